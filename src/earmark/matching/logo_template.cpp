#include "earmark/matching/logo_template.h"

#include <algorithm>
#include <cmath>

#include "earmark/common/bytes.h"
#include "earmark/common/checksum.h"
#include "earmark/common/error.h"

namespace earmark {

namespace {

constexpr char kMagic[8] = {'E', 'M', 'K', 'L', 'O', 'G', 'O', '\1'};
constexpr size_t kHeaderBytes = 8 + 4 * 4 + 8 + 8;  // magic, 4 x u32, energy, checksum
constexpr float kDbPerNeper = 4.3429448f;           // 10 / ln(10): log-power to dB

}  // namespace

ContrastSpectrogram::ContrastSpectrogram(const LandmarkParams& params, StepSink sink)
    : params_(params), sink_(std::move(sink)) {
  const auto range = LandmarkSpectrogram::bin_range(params);
  const double bin_hz = double(params.sample_rate) / params.fft_size;
  const double lowest = std::max(1.0, range.first * bin_hz);
  band_of_bin_.resize(range.count);
  // Bins map to half-semitone bands; at low frequencies a bin is wider than a band, and the bands
  // no bin falls in are dropped, so every band holds at least one bin.
  int last_raw = -1;
  for (int k = 0; k < range.count; ++k) {
    const double hz = (range.first + k) * bin_hz;
    const int raw = int(std::lround(kLogoBandsPerOctave * std::log2(hz / lowest)));
    if (raw != last_raw) {
      ++num_bands_;
      last_raw = raw;
    }
    band_of_bin_[k] = num_bands_ - 1;
  }
  level_.assign(num_bands_, -1e30f);
  contrast_.resize(num_bands_);
  prefix_.resize(num_bands_ + 1);
}

void ContrastSpectrogram::push_frame(const float* log_power) {
  for (size_t k = 0; k < band_of_bin_.size(); ++k) {
    float& l = level_[band_of_bin_[k]];
    l = std::max(l, log_power[k] * kDbPerNeper);
  }
  if (++frames_in_step_ == kLogoFramesPerStep) emit();
}

void ContrastSpectrogram::emit() {
  prefix_[0] = 0;
  for (int b = 0; b < num_bands_; ++b) prefix_[b + 1] = prefix_[b] + level_[b];
  // Near the edges the neighbourhood is cut, not padded: the mean of what is there.
  for (int b = 0; b < num_bands_; ++b) {
    const int lo = std::max(0, b - kLogoContrastRadius);
    const int hi = std::min(num_bands_, b + kLogoContrastRadius + 1);
    contrast_[b] = level_[b] - (prefix_[hi] - prefix_[lo]) / float(hi - lo);
  }
  sink_(next_step_++, level_.data(), contrast_.data());
  std::fill(level_.begin(), level_.end(), -1e30f);
  frames_in_step_ = 0;
}

void ContrastSpectrogram::finish() {
  if (frames_in_step_ > 0) emit();
}

LogoTemplate::Builder::Builder(const LandmarkParams& params)
    : params_(params.for_reference(0, true)),
      spectrogram_(params,
                   [this](int, const float* level, const float* contrast) {
                     if (steps_ >= max_steps_) return;
                     const int nb = spectrogram_.num_bands();
                     level_.insert(level_.end(), level, level + nb);
                     contrast_.insert(contrast_.end(), contrast, contrast + nb);
                     ++steps_;
                   }),
      picker_(params_, LandmarkSpectrogram::bin_range(params).first,
              LandmarkSpectrogram::bin_range(params).count,
              [this](const std::vector<SpectralPeak>& peaks, int) {
                for (const SpectralPeak& p : peaks)
                  if (p.frame < max_steps_ * kLogoFramesPerStep) peaks_.push_back({p.time, p.bin});
              }),
      max_steps_(int(kLogoMaxSeconds / (params.frame_seconds() * kLogoFramesPerStep))) {}

void LogoTemplate::Builder::push_frame(const float* log_power) {
  spectrogram_.push_frame(log_power);
  // The rest of a long reference adds nothing to what is kept.
  if (frames_ < max_steps_ * kLogoFramesPerStep + params_.peak_time_radius)
    picker_.push_frame(frames_, log_power);
  ++frames_;
}

std::optional<LogoTemplate> LogoTemplate::Builder::finish() {
  spectrogram_.finish();
  picker_.finish();
  const int nb = spectrogram_.num_bands();
  if (steps_ == 0) return std::nullopt;
  const float loudest = *std::max_element(level_.begin(), level_.end());
  const float floor = loudest - kLogoSupportDb;
  LogoTemplate t;
  t.steps_ = steps_;
  t.num_bands_ = nb;
  for (int b = 0; b < nb; ++b)
    for (int s = 0; s < steps_; ++s)
      if (level_[size_t(s) * nb + b] > floor)
        t.cells_.push_back({uint16_t(s), uint16_t(b), contrast_[size_t(s) * nb + b]});
  // Fewer cells than this cannot tell a logo from chance (see LogoMatcher's score).
  if (t.cells_.size() < 32) return std::nullopt;
  double mean = 0;
  for (const LogoCell& c : t.cells_) mean += c.value;
  mean /= double(t.cells_.size());
  for (LogoCell& c : t.cells_) {
    c.value = float(c.value - mean);
    t.energy_ += double(c.value) * c.value;
  }
  if (!(t.energy_ > 1e-6)) return std::nullopt;  // flat: no pattern to correlate
  t.peaks_ = std::move(peaks_);
  return t;
}

std::optional<LogoTemplate> LogoTemplate::build(const LandmarkParams& params, const float* samples,
                                                size_t count) {
  Builder b(params);
  LandmarkSpectrogram spectrogram(params, [&b](int, const float* v) { b.push_frame(v); });
  spectrogram.push(samples, count);
  spectrogram.finish();
  return b.finish();
}

std::string LogoTemplate::serialise() const {
  std::string body;
  for (const LogoCell& c : cells_) {
    put<uint16_t>(body, c.step);
    put<uint16_t>(body, c.band);
    put<float>(body, c.value);
  }
  put<uint32_t>(body, uint32_t(peaks_.size()));
  for (const LogoPeak& p : peaks_) {
    put<float>(body, p.frame);
    put<float>(body, p.bin);
  }
  std::string out(kMagic, kMagic + 8);
  put<uint32_t>(out, uint32_t(kLogoTemplateVersion));
  put<uint32_t>(out, uint32_t(steps_));
  put<uint32_t>(out, uint32_t(num_bands_));
  put<uint32_t>(out, uint32_t(cells_.size()));
  put<double>(out, energy_);
  put<uint64_t>(out, fnv1a(kFnvSeed, body.data(), body.size()));
  return out + body;
}

LogoTemplate LogoTemplate::parse(const std::string& blob) {
  const auto* p = reinterpret_cast<const unsigned char*>(blob.data());
  if (blob.size() < kHeaderBytes || std::memcmp(p, kMagic, 8) != 0)
    throw Error("not a sound-logo template");
  const uint32_t version = get<uint32_t>(p + 8);
  if (version != 1 && version != uint32_t(kLogoTemplateVersion))
    throw Error("sound-logo template version " + std::to_string(version) + ", this build reads " +
                std::to_string(kLogoTemplateVersion) + " (re-index the logo)");
  LogoTemplate t;
  t.steps_ = int(get<uint32_t>(p + 12));
  t.num_bands_ = int(get<uint32_t>(p + 16));
  const uint32_t n = get<uint32_t>(p + 20);
  t.energy_ = get<double>(p + 24);
  const uint64_t sum = get<uint64_t>(p + 32);
  const size_t cell_bytes = size_t(n) * 8;
  const size_t body = blob.size() - kHeaderBytes;
  // Version 1 holds the cells only; version 2 adds the constellation after them.
  size_t peaks = 0;
  if (version >= 2) {
    if (body < cell_bytes + 4) throw Error("sound-logo template is truncated");
    peaks = get<uint32_t>(p + kHeaderBytes + cell_bytes);
  }
  const size_t expected = cell_bytes + (version >= 2 ? 4 + peaks * 8 : 0);
  if (body != expected) throw Error("sound-logo template is truncated or has trailing bytes");
  if (fnv1a(kFnvSeed, p + kHeaderBytes, body) != sum)
    throw Error("sound-logo template fails its checksum");
  t.cells_.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    const unsigned char* c = p + kHeaderBytes + size_t(i) * 8;
    t.cells_[i] = {get<uint16_t>(c), get<uint16_t>(c + 2), get<float>(c + 4)};
    if (t.cells_[i].step >= t.steps_ || t.cells_[i].band >= t.num_bands_)
      throw Error("sound-logo template has a cell outside its own geometry");
  }
  t.peaks_.resize(peaks);
  for (size_t i = 0; i < peaks; ++i) {
    const unsigned char* c = p + kHeaderBytes + cell_bytes + 4 + i * 8;
    t.peaks_[i] = {get<float>(c), get<float>(c + 4)};
    if (!(t.peaks_[i].frame >= -1 && t.peaks_[i].frame <= t.steps_ * kLogoFramesPerStep + 1 &&
          t.peaks_[i].bin >= 0 && t.peaks_[i].bin < 1e5))
      throw Error("sound-logo template has a peak outside its own geometry");
  }
  return t;
}

}  // namespace earmark
