#pragma once
// Audio -> triplet landmarks, streaming: LandmarkSpectrogram -> PeakPicker -> triplets.
// Each step keeps only the look-ahead it needs (the peak neighbourhood, one second for the
// density cap, max_dt frames for the triplet targets), so memory does not grow with length.
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
  using TripletSink = TripletBuilder::TripletSink;

  LandmarkExtractor(const LandmarkParams& params, TripletSink sink);

  void consume(const float* samples, size_t count) override;
  // Flushes the tail; call once after the last samples.
  void finish();

  size_t num_peaks() const { return triplets_.num_peaks(); }
  size_t num_triplets() const { return triplets_.num_triplets(); }
  int num_frames() const { return num_frames_; }

 private:
  TripletBuilder triplets_;
  std::unique_ptr<PeakPicker> picker_;
  std::unique_ptr<LandmarkSpectrogram> spectrogram_;
  int num_frames_ = 0;
};

// The layers of one recording (LandmarkParams::query_layers / reference_layers): the layers
// differ in density only, so one spectrogram and one peak picker serve them all, the picker
// keeping each layer's number of peaks per second; every layer's triplets go to one sink. Each
// layer's triplets arrive in anchor order; layers interleave. Other stages that work on the same
// spectrogram or peaks (sound-logo templates and constellations) can tap its frames and the first
// layer's peaks instead of computing them again.
class LayeredExtractor : public AudioConsumer {
 public:
  using FrameTap = LandmarkSpectrogram::FrameSink;
  using PeakTap = PeakPicker::PeakSink;

  LayeredExtractor(const std::vector<LandmarkParams>& layers,
                   const LandmarkExtractor::TripletSink& sink, FrameTap tap = nullptr,
                   PeakTap peak_tap = nullptr);

  void consume(const float* samples, size_t count) override;
  void finish();

 private:
  std::vector<std::unique_ptr<TripletBuilder>> layers_;
  FrameTap tap_;
  PeakTap peak_tap_;
  std::unique_ptr<PeakPicker> picker_;
  std::unique_ptr<LandmarkSpectrogram> spectrogram_;
};

// The spectral peaks of a whole signal in memory, as the landmark stage picks them (for tools and
// tests that look at the peaks themselves).
std::vector<SpectralPeak> extract_peaks(const LandmarkParams& params, const float* samples,
                                        size_t count);

// Convenience for indexing: the quantised landmarks of a whole signal in memory.
std::vector<Landmark> extract_landmarks(const LandmarkParams& params, const float* samples,
                                        size_t count);

}  // namespace earmark
