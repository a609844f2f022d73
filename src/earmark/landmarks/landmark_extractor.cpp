#include "earmark/landmarks/landmark_extractor.h"

#include <algorithm>
#include <cmath>

#include "earmark/common/error.h"

namespace earmark {

LandmarkExtractor::LandmarkExtractor(const LandmarkParams& params, TripletSink sink)
    : triplets_(params, std::move(sink)) {
  params.validate();
  const auto range = LandmarkSpectrogram::bin_range(params);
  picker_ = std::make_unique<PeakPicker>(params, range.first, range.count,
                                         [this](const std::vector<SpectralPeak>& p, int watermark) {
                                           triplets_.push_peaks(p, watermark);
                                         });
  spectrogram_ = std::make_unique<LandmarkSpectrogram>(params, [this](int frame, const float* v) {
    num_frames_ = frame + 1;
    picker_->push_frame(frame, v);
  });
}

void LandmarkExtractor::consume(const float* samples, size_t count) {
  spectrogram_->push(samples, count);
}

void LandmarkExtractor::finish() {
  spectrogram_->finish();
  picker_->finish();
  triplets_.finish();
}

LayeredExtractor::LayeredExtractor(const std::vector<LandmarkParams>& layers,
                                   const LandmarkExtractor::TripletSink& sink, FrameTap tap,
                                   PeakTap peak_tap)
    : tap_(std::move(tap)), peak_tap_(std::move(peak_tap)) {
  if (layers.empty()) throw Error("no landmark layer to extract");
  const LandmarkParams& first = layers.front();
  const nlohmann::json geometry = first.hash_identity(), picking = first.peak_identity();
  std::vector<PeakPicker::Output> outputs;
  for (const LandmarkParams& p : layers) {
    p.validate();
    if (p.hash_identity() != geometry || p.peak_identity() != picking)
      throw Error("landmark layers must share their spectrogram, peak and hash settings");
    layers_.push_back(std::make_unique<TripletBuilder>(p, sink));
    TripletBuilder* layer = layers_.back().get();
    const PeakTap* tap = outputs.empty() && peak_tap_ ? &peak_tap_ : nullptr;
    outputs.push_back(
        {p.peaks_per_second, [layer, tap](const std::vector<SpectralPeak>& peaks, int watermark) {
           layer->push_peaks(peaks, watermark);
           if (tap) (*tap)(peaks, watermark);
         }});
  }
  const auto range = LandmarkSpectrogram::bin_range(first);
  picker_ = std::make_unique<PeakPicker>(first, range.first, range.count, std::move(outputs));
  spectrogram_ =
      std::make_unique<LandmarkSpectrogram>(first, [this](int frame, const float* log_power) {
        picker_->push_frame(frame, log_power);
        if (tap_) tap_(frame, log_power);
      });
}

void LayeredExtractor::consume(const float* samples, size_t count) {
  spectrogram_->push(samples, count);
}

void LayeredExtractor::finish() {
  spectrogram_->finish();
  picker_->finish();
  for (auto& layer : layers_) layer->finish();
}

std::vector<SpectralPeak> extract_peaks(const LandmarkParams& params, const float* samples,
                                        size_t count) {
  params.validate();
  std::vector<SpectralPeak> out;
  const auto range = LandmarkSpectrogram::bin_range(params);
  PeakPicker picker(params, range.first, range.count,
                    [&](const std::vector<SpectralPeak>& peaks, int) {
                      out.insert(out.end(), peaks.begin(), peaks.end());
                    });
  LandmarkSpectrogram spectrogram(
      params, [&](int frame, const float* log_power) { picker.push_frame(frame, log_power); });
  spectrogram.push(samples, count);
  spectrogram.finish();
  picker.finish();
  return out;
}

std::vector<Landmark> extract_landmarks(const LandmarkParams& params, const float* samples,
                                        size_t count) {
  TripletQuantizer quantizer(params);
  std::vector<Landmark> out;
  LandmarkExtractor extractor(params, [&](const TripletDescriptor& d) {
    out.push_back({quantizer.key(d), uint32_t(d.frame), TripletQuantizer::pitch_code(d.pitch)});
  });
  extractor.consume(samples, count);
  extractor.finish();
  return out;
}

}  // namespace earmark
