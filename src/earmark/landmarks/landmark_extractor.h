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

  // With own_spectrogram false, the extractor is fed spectrogram frames (push_frame) by a
  // LandmarkSpectrogram of the same geometry that it shares with others.
  LandmarkExtractor(const LandmarkParams& params, TripletSink sink, bool own_spectrogram = true);

  void consume(const float* samples, size_t count) override;
  void push_frame(int frame, const float* log_power);
  // Flushes the tail; call once after the last samples (or frames).
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

// The layers of one recording (LandmarkParams::query_layers / reference_layers): one spectrogram
// (the layers differ in density, not in geometry) feeding an extractor per layer, all feeding one
// sink. Each layer's triplets arrive in anchor order; layers interleave. Other stages that work
// on the same spectrogram (sound-logo templates) can tap its frames instead of computing it again.
class LayeredExtractor : public AudioConsumer {
 public:
  using FrameTap = LandmarkSpectrogram::FrameSink;

  LayeredExtractor(const std::vector<LandmarkParams>& layers,
                   const LandmarkExtractor::TripletSink& sink, FrameTap tap = nullptr);

  void consume(const float* samples, size_t count) override;
  void finish();

 private:
  std::vector<std::unique_ptr<LandmarkExtractor>> layers_;
  FrameTap tap_;
  std::unique_ptr<LandmarkSpectrogram> spectrogram_;
};

// Convenience for indexing: the quantised landmarks of a whole signal in memory.
std::vector<Landmark> extract_landmarks(const LandmarkParams& params, const float* samples,
                                        size_t count);

}  // namespace earmark
