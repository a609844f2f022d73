#include "earmark/decode/level_normaliser.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "earmark/common/error.h"

namespace earmark {

namespace {

double db_to_amplitude(double db) { return std::pow(10.0, db / 20.0); }
double db_to_power(double db) { return std::pow(10.0, db / 10.0); }

// Per-sample coefficient of a one-pole smoother with time constant tau (0 = no smoothing).
double one_pole(double tau_s, int sample_rate) {
  if (tau_s <= 0.0) return 1.0;
  return 1.0 - std::exp(-1.0 / (tau_s * sample_rate));
}

}  // namespace

LevelNormaliser::LevelNormaliser(int sample_rate, const LevelNormaliserOptions& options)
    : opt_(options) {
  if (sample_rate <= 0) {
    throw Error("LevelNormaliser: sample rate must be positive, got " +
                std::to_string(sample_rate));
  }
  if (!(opt_.min_gain_db <= opt_.max_gain_db)) {
    throw Error("LevelNormaliser: min_gain_db must not exceed max_gain_db");
  }
  if (!(opt_.limiter_knee > 0.0 && opt_.limiter_knee < 1.0)) {
    throw Error("LevelNormaliser: limiter_knee must lie in (0, 1)");
  }
  if (!(opt_.lookahead_s >= 0.0 && opt_.lookahead_s <= 10.0)) {
    throw Error("LevelNormaliser: lookahead_s must lie in [0, 10]");
  }
  if (opt_.silence_knee_db < 0.0) opt_.silence_knee_db = 0.0;
  a_short_ = one_pole(opt_.short_tau_s, sample_rate);
  a_attack_ = one_pole(opt_.attack_tau_s, sample_rate);
  a_release_ = one_pole(opt_.release_tau_s, sample_rate);
  target_rms_ = db_to_amplitude(opt_.target_rms_db);
  min_gain_ = db_to_amplitude(opt_.min_gain_db);
  max_gain_ = db_to_amplitude(opt_.max_gain_db);
  silence_power_ = db_to_power(opt_.silence_db);
  knee_top_power_ = db_to_power(opt_.silence_db + opt_.silence_knee_db);
  delay_.assign(static_cast<size_t>(std::lround(opt_.lookahead_s * sample_rate)), 0.0f);
}

void LevelNormaliser::reset() {
  std::fill(delay_.begin(), delay_.end(), 0.0f);
  head_ = 0;
  filled_ = 0;
  initialised_ = false;
  short_power_ = slow_power_ = 0.0;
  gain_ = 1.0;
}

double LevelNormaliser::gain_for_power(double power) const {
  const double rms = std::sqrt(power);
  double full = rms > 0.0 ? target_rms_ / rms : max_gain_;
  full = std::clamp(full, min_gain_, max_gain_);
  if (power >= knee_top_power_ || full <= 1.0) return full;
  // Near silence: never amplify below the threshold, and ramp the amplification (in dB) up
  // linearly across the knee so the gain is a continuous function of the level.
  if (power <= silence_power_) return 1.0;
  const double level_db = 10.0 * std::log10(power);
  const double frac = (level_db - opt_.silence_db) / opt_.silence_knee_db;
  return std::pow(full, frac);  // = 10^(frac * gain_db / 20)
}

float LevelNormaliser::limit(double y) const {
  // Linear below the knee; above it a tanh segment with unit slope at the knee that approaches
  // (but never exceeds) full scale. Smooth, so no hard-clipping harmonics.
  const double k = opt_.limiter_knee;
  const double a = std::fabs(y);
  if (a <= k) return static_cast<float>(y);
  const double limited = k + (1.0 - k) * std::tanh((a - k) / (1.0 - k));
  return static_cast<float>(std::copysign(std::min(limited, 1.0), y));
}

void LevelNormaliser::initialise_from_buffer() {
  // Seed the level estimates with the mean power of the first look-ahead window instead of zero,
  // so the very start of a file is scaled correctly instead of being hit by +40 dB of gain.
  double sum = 0.0;
  for (size_t i = 0; i < filled_; ++i) sum += static_cast<double>(delay_[i]) * delay_[i];
  const double mean = filled_ > 0 ? sum / static_cast<double>(filled_) : 0.0;
  short_power_ = slow_power_ = mean;
  gain_ = gain_for_power(slow_power_);
  initialised_ = true;
  head_ = 0;
}

void LevelNormaliser::process(const float* in, size_t count, std::vector<float>& out) {
  const size_t size = delay_.size();
  out.reserve(out.size() + count);
  for (size_t i = 0; i < count; ++i) {
    float x = in[i];
    if (!std::isfinite(x)) x = 0.0f;  // a broken decoder frame must not poison the estimates
    if (!initialised_) {
      if (size == 0) {
        initialise_from_buffer();
        short_power_ = slow_power_ = static_cast<double>(x) * x;
      } else {
        delay_[filled_++] = x;
        if (filled_ == size) initialise_from_buffer();
        continue;
      }
    }
    // Measure the level at the look-ahead point (the newest sample) ...
    const double p = static_cast<double>(x) * x;
    short_power_ += a_short_ * (p - short_power_);
    const double a = short_power_ > slow_power_ ? a_attack_ : a_release_;
    slow_power_ += a * (short_power_ - slow_power_);
    gain_ = gain_for_power(slow_power_);
    // ... and scale the sample that is `size` samples older.
    if (size == 0) {
      out.push_back(limit(gain_ * x));
    } else {
      out.push_back(limit(gain_ * delay_[head_]));
      delay_[head_] = x;
      head_ = head_ + 1 == size ? 0 : head_ + 1;
    }
  }
}

void LevelNormaliser::flush(std::vector<float>& out) {
  const size_t size = delay_.size();
  if (!initialised_) {
    // Shorter than the look-ahead window: scale everything by the gain for its mean level.
    if (filled_ > 0) {
      initialise_from_buffer();
      for (size_t i = 0; i < filled_; ++i) out.push_back(limit(gain_ * delay_[i]));
    }
  } else {
    // No newer input: hold the last gain for the remaining look-ahead window.
    for (size_t i = 0; i < size; ++i) {
      out.push_back(limit(gain_ * delay_[head_]));
      head_ = head_ + 1 == size ? 0 : head_ + 1;
    }
  }
  reset();
}

}  // namespace earmark
