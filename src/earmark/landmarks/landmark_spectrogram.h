#pragma once
// Streaming log-magnitude spectrogram for peak picking: 16 kHz samples in, one frame of
// log-power per hop out, limited to the bins between min_hz and max_hz.
#include <cstddef>
#include <functional>
#include <vector>

#include "earmark/features/stft.h"
#include "earmark/landmarks/landmark_params.h"

namespace earmark {

class LandmarkSpectrogram {
 public:
  // frame index, log-power of bins [first_bin(), first_bin()+num_bins())
  using FrameSink = std::function<void(int frame, const float* log_power)>;

  LandmarkSpectrogram(const LandmarkParams& params, FrameSink sink);

  // First bin and number of bins of the analysed band, for these settings.
  struct BinRange {
    int first = 0, count = 0;
  };
  static BinRange bin_range(const LandmarkParams& params);

  int first_bin() const { return first_bin_; }
  int num_bins() const { return num_bins_; }

  void push(const float* samples, size_t count);
  // Pads the tail with zeros so the last partial frame is analysed too.
  void finish();

 private:
  void emit_frame(const float* frame_start);

  LandmarkParams params_;
  FrameSink sink_;
  Stft stft_;
  std::vector<float> window_;
  std::vector<float> buffer_;  // samples not yet consumed by a full frame
  std::vector<float> windowed_;
  std::vector<float> power_;
  std::vector<float> log_power_;
  int first_bin_ = 0;
  int num_bins_ = 0;
  int next_frame_ = 0;
  size_t samples_seen_ = 0;
};

}  // namespace earmark
