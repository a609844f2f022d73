#pragma once
// Audio -> triplet landmarks, streaming: LandmarkSpectrogram -> PeakPicker -> triplets.
// Each step keeps only the look-ahead it needs (the peak neighbourhood, one second for the
// density cap, max_dt frames for the triplet targets), so memory does not grow with length.
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "earmark/decode/audio_decoder.h"
#include "earmark/landmarks/landmark_params.h"
#include "earmark/landmarks/landmark_spectrogram.h"
#include "earmark/landmarks/peak_picker.h"
#include "earmark/landmarks/triplet.h"

namespace earmark {

class LandmarkExtractor : public AudioConsumer {
 public:
  using TripletSink = std::function<void(const TripletDescriptor&)>;

  LandmarkExtractor(const LandmarkParams& params, TripletSink sink);

  void consume(const float* samples, size_t count) override;
  // Flushes the tail; call once after the last samples.
  void finish();

  size_t num_peaks() const { return num_peaks_; }
  size_t num_triplets() const { return num_triplets_; }
  int num_frames() const { return num_frames_; }

 private:
  void on_peaks(const std::vector<SpectralPeak>& peaks, int watermark);
  void emit_anchor(size_t i);

  LandmarkParams params_;
  TripletSink sink_;
  std::unique_ptr<PeakPicker> picker_;
  std::unique_ptr<LandmarkSpectrogram> spectrogram_;
  std::deque<SpectralPeak> peaks_;
  size_t num_peaks_ = 0, num_triplets_ = 0;
  int num_frames_ = 0;
};

// The layers of one recording (LandmarkParams::query_layers / reference_layers): an extractor per
// layer over the same audio, all feeding one sink. Each layer's triplets arrive in anchor order;
// layers interleave.
class LayeredExtractor : public AudioConsumer {
 public:
  LayeredExtractor(const std::vector<LandmarkParams>& layers,
                   const LandmarkExtractor::TripletSink& sink);

  void consume(const float* samples, size_t count) override;
  void finish();

 private:
  std::vector<std::unique_ptr<LandmarkExtractor>> layers_;
};

// Convenience for indexing: the quantised landmarks of a whole signal in memory.
std::vector<Landmark> extract_landmarks(const LandmarkParams& params, const float* samples,
                                        size_t count);

}  // namespace earmark
