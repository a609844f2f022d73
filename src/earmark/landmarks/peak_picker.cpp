#include "earmark/landmarks/peak_picker.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace earmark {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Peaks quieter than this log-power (about -100 dB below a full-scale sine) are digital silence
// or dither, never content. Level is not normalised before peak picking, so the floor is low.
constexpr float kAbsoluteFloor = -12.0f;
// Half-width, in bins, of the band whose mean is a peak's reference level.
constexpr int kLevelRadius = 24;

// out[k] = max(in[k-r .. k+r]) in O(n) per frame with the van Herk / Gil-Werman blocks.
void running_max(const std::vector<float>& in, int r, std::vector<float>& left,
                 std::vector<float>& right, std::vector<float>& out) {
  const int n = int(in.size());
  const int w = 2 * r + 1;
  left.resize(n);
  right.resize(n);
  for (int i = 0; i < n; ++i) left[i] = (i % w == 0) ? in[i] : std::max(left[i - 1], in[i]);
  for (int i = n - 1; i >= 0; --i)
    right[i] = (i == n - 1 || (i + 1) % w == 0) ? in[i] : std::max(right[i + 1], in[i]);
  out.resize(n);
  for (int k = 0; k < n; ++k) {
    int lo = std::max(0, k - r), hi = std::min(n - 1, k + r);
    out[k] = std::max(right[lo], left[hi]);
  }
}

float parabolic_offset(float a, float b, float c) {
  float d = a - 2 * b + c;
  if (!(d < 0)) return 0.0f;
  return std::clamp(0.5f * (a - c) / d, -0.5f, 0.5f);
}

}  // namespace

PeakPicker::PeakPicker(const LandmarkParams& params, int first_bin, int num_bins, PeakSink sink)
    : PeakPicker(params, first_bin, num_bins, {{params.peaks_per_second, std::move(sink)}}) {}

PeakPicker::PeakPicker(const LandmarkParams& params, int first_bin, int num_bins,
                       std::vector<Output> outputs)
    : params_(params), first_bin_(first_bin), num_bins_(num_bins), outputs_(std::move(outputs)) {
  frames_per_block_ = std::max(1, int(std::lround(double(params.sample_rate) / params.hop)));
  block_end_ = frames_per_block_;
  prefix_.resize(num_bins + 1);
}

void PeakPicker::push_frame(int frame, const float* log_power) {
  Frame f;
  if (!pool_.empty()) {
    f = std::move(pool_.back());
    pool_.pop_back();
  }
  f.index = frame;
  f.value.assign(log_power, log_power + num_bins_);
  running_max(f.value, params_.peak_freq_radius, left_, right_, f.freq_max);
  frames_.push_back(std::move(f));
  last_frame_ = frame;
  const size_t r = params_.peak_time_radius;
  // frames_ holds the evaluated frame's past (r frames) and future (r frames).
  if (frames_.size() > r) evaluate(frames_.size() - 1 - r);
  if (frames_.size() > 2 * r + 1) {
    pool_.push_back(std::move(frames_.front()));
    frames_.pop_front();
  }
}

void PeakPicker::finish() {
  const size_t r = params_.peak_time_radius;
  // The last r frames never had their full future: evaluate them against what exists.
  size_t start = frames_.size() > r ? frames_.size() - r : 0;
  for (size_t pos = start; pos < frames_.size(); ++pos) evaluate(pos);
  close_block(last_frame_ + 1);
  frames_.clear();
}

void PeakPicker::evaluate(size_t pos) {
  const Frame& f = frames_[pos];
  while (f.index >= block_end_) {
    close_block(block_end_);
    block_end_ += frames_per_block_;
  }
  const int r = params_.peak_time_radius;
  float floor = kNegInf;
  if (params_.level_floor > 0) {
    double power = 0;
    for (int k = 0; k < num_bins_; ++k) power += std::exp(f.value[k]);
    floor = float(std::log(power / num_bins_ + 1e-30)) - params_.level_floor;
  }
  for (int k = 0; k < num_bins_; ++k) prefix_[k + 1] = prefix_[k] + std::max(f.value[k], floor);
  for (int k = 0; k < num_bins_; ++k) {
    const float v = f.value[k];
    if (v < kAbsoluteFloor || v < f.freq_max[k]) continue;
    if (k > 0 && f.value[k - 1] >= v) continue;  // plateau: keep its first bin only
    bool is_max = true;
    for (int d = -r; d <= r && is_max; ++d) {
      if (d == 0) continue;
      long p = long(pos) + d;
      if (p < 0 || p >= long(frames_.size())) continue;
      float other = frames_[p].freq_max[k];
      is_max = d < 0 ? v > other : v >= other;
    }
    if (!is_max) continue;
    int lo = std::max(0, k - kLevelRadius), hi = std::min(num_bins_, k + kLevelRadius + 1);
    float level = float((prefix_[hi] - prefix_[lo]) / (hi - lo));
    float prominence = v - level;
    if (prominence < params_.min_prominence) continue;

    float a = k > 0 ? f.value[k - 1] : v, c = k + 1 < num_bins_ ? f.value[k + 1] : v;
    float bin = first_bin_ + k + parabolic_offset(a, v, c);
    float prev = pos > 0 ? frames_[pos - 1].value[k] : v;
    float next = pos + 1 < frames_.size() ? frames_[pos + 1].value[k] : v;
    SpectralPeak peak;
    peak.frame = f.index;
    peak.time = f.index + parabolic_offset(prev, v, next);
    peak.bin = bin;
    peak.pitch = hz_to_pitch(double(bin) * params_.sample_rate / params_.fft_size);
    peak.prominence = prominence;
    block_.push_back(peak);
  }
}

void PeakPicker::close_block(int end_frame) {
  const int block_start = block_end_ - frames_per_block_;
  const int frames = std::max(1, std::min(end_frame, block_end_) - block_start);
  // Most prominent first, with a total order so equal prominences do not make the kept set
  // depend on the sort's internals.
  std::sort(block_.begin(), block_.end(), [](const SpectralPeak& a, const SpectralPeak& b) {
    if (a.prominence != b.prominence) return a.prominence > b.prominence;
    return a.frame != b.frame ? a.frame < b.frame : a.pitch < b.pitch;
  });
  for (const Output& out : outputs_) {
    size_t cap = size_t(std::ceil(double(out.peaks_per_second) * frames / frames_per_block_));
    kept_.assign(block_.begin(), block_.begin() + std::min(cap, block_.size()));
    std::sort(kept_.begin(), kept_.end(), [](const SpectralPeak& a, const SpectralPeak& b) {
      return a.frame != b.frame ? a.frame < b.frame : a.pitch < b.pitch;
    });
    out.sink(kept_, end_frame);
  }
  block_.clear();
}

}  // namespace earmark
