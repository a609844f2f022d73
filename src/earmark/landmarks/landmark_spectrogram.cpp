#include "earmark/landmarks/landmark_spectrogram.h"

#include <algorithm>
#include <cmath>

namespace earmark {

LandmarkSpectrogram::LandmarkSpectrogram(const LandmarkParams& params, FrameSink sink)
    : params_(params), sink_(std::move(sink)), stft_(params.fft_size) {
  window_ = make_window(WindowType::kHann, params.fft_size);
  windowed_.resize(params.fft_size);
  power_.resize(stft_.num_bins());
  const BinRange range = bin_range(params);
  first_bin_ = range.first;
  num_bins_ = range.count;
  log_power_.resize(num_bins_);
}

LandmarkSpectrogram::BinRange LandmarkSpectrogram::bin_range(const LandmarkParams& params) {
  const double bin_hz = double(params.sample_rate) / params.fft_size;
  const int bins = params.fft_size / 2 + 1;
  BinRange r;
  r.first = std::max(1, int(std::floor(params.min_hz / bin_hz)));
  const int last = std::min(bins - 2, int(std::ceil(params.max_hz / bin_hz)));
  r.count = std::max(1, last - r.first + 1);
  return r;
}

void LandmarkSpectrogram::emit_frame(const float* frame_start) {
  const size_t n = params_.fft_size;
  for (size_t i = 0; i < n; ++i) windowed_[i] = frame_start[i] * window_[i];
  stft_.power_spectrum(windowed_.data(), n, power_.data());
  // The floor sits far below any audible component of a level-normalised signal, so digital
  // silence gives a flat spectrum without peaks instead of log(0).
  for (int k = 0; k < num_bins_; ++k) log_power_[k] = std::log(power_[first_bin_ + k] + 1e-6f);
  sink_(next_frame_++, log_power_.data());
}

void LandmarkSpectrogram::push(const float* samples, size_t count) {
  buffer_.insert(buffer_.end(), samples, samples + count);
  samples_seen_ += count;
  const size_t n = params_.fft_size, hop = params_.hop;
  size_t pos = 0;
  while (buffer_.size() - pos >= n) {
    emit_frame(buffer_.data() + pos);
    pos += hop;
  }
  buffer_.erase(buffer_.begin(), buffer_.begin() + pos);
}

void LandmarkSpectrogram::finish() {
  // Centre convention: frame t covers [t*hop, t*hop + fft); analyse until the last frame whose
  // start lies inside the signal so short clips still give frames.
  const size_t n = params_.fft_size, hop = params_.hop;
  if (samples_seen_ == 0) return;
  size_t frames_total = samples_seen_ < n ? 1 : 1 + (samples_seen_ - n + hop - 1) / hop;
  while (size_t(next_frame_) < frames_total) {
    buffer_.resize(std::max(buffer_.size(), n), 0.0f);
    emit_frame(buffer_.data());
    buffer_.erase(buffer_.begin(), buffer_.begin() + std::min(hop, buffer_.size()));
  }
  buffer_.clear();
}

}  // namespace earmark
