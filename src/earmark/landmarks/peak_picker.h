#pragma once
// Streaming spectral peak picker: a peak is the maximum of a time-frequency neighbourhood
// (2-D max filter, separable: a running maximum along frequency per frame, then across the
// frames of the window) that also stands out from its frame's local level. Density is capped
// per second, keeping the most prominent peaks, so loud dense passages do not flood the index.
// Several densities can be served from one pass: the landmark layers of a recording differ only
// in how many peaks per second they keep, and finding the candidates is the costly part.
#include <deque>
#include <functional>
#include <vector>

#include "earmark/landmarks/landmark_params.h"
#include "earmark/landmarks/spectral_peak.h"

namespace earmark {

class PeakPicker {
 public:
  // Peaks in time order; every peak with frame < watermark has been delivered.
  using PeakSink = std::function<void(const std::vector<SpectralPeak>& peaks, int watermark)>;

  // One density cap and where its peaks go.
  struct Output {
    int peaks_per_second = 0;
    PeakSink sink;
  };

  // One output, at params.peaks_per_second.
  PeakPicker(const LandmarkParams& params, int first_bin, int num_bins, PeakSink sink);
  PeakPicker(const LandmarkParams& params, int first_bin, int num_bins,
             std::vector<Output> outputs);

  void push_frame(int frame, const float* log_power);
  void finish();

 private:
  struct Frame {
    int index = 0;
    std::vector<float> value;     // log-power
    std::vector<float> freq_max;  // running max over +-freq_radius bins
  };
  void evaluate(size_t pos);
  void close_block(int end_frame);

  LandmarkParams params_;
  int first_bin_;
  int num_bins_;
  std::vector<Output> outputs_;
  int frames_per_block_;
  std::deque<Frame> frames_;
  std::vector<Frame> pool_;
  std::vector<double> prefix_;
  std::vector<SpectralPeak> block_;
  std::vector<SpectralPeak> kept_;
  std::vector<float> left_, right_;  // running-max scratch
  int block_end_ = 0;
  int last_frame_ = -1;
};

}  // namespace earmark
