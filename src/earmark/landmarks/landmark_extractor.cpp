#include "earmark/landmarks/landmark_extractor.h"

#include <algorithm>
#include <cmath>

#include "earmark/common/error.h"

namespace earmark {

namespace {
constexpr float kSamePitch = 0.5f;  // semitones
}  // namespace

LandmarkExtractor::LandmarkExtractor(const LandmarkParams& params, TripletSink sink,
                                     bool own_spectrogram)
    : params_(params), sink_(std::move(sink)) {
  params_.validate();
  const auto range = LandmarkSpectrogram::bin_range(params_);
  picker_ = std::make_unique<PeakPicker>(
      params_, range.first, range.count,
      [this](const std::vector<SpectralPeak>& p, int watermark) { on_peaks(p, watermark); });
  if (own_spectrogram)
    spectrogram_ = std::make_unique<LandmarkSpectrogram>(
        params_, [this](int frame, const float* v) { push_frame(frame, v); });
}

void LandmarkExtractor::consume(const float* samples, size_t count) {
  if (!spectrogram_) throw Error("landmark extractor is fed frames, not samples");
  spectrogram_->push(samples, count);
}

void LandmarkExtractor::push_frame(int frame, const float* log_power) {
  num_frames_ = frame + 1;
  picker_->push_frame(frame, log_power);
}

void LandmarkExtractor::finish() {
  if (spectrogram_) spectrogram_->finish();
  picker_->finish();
  while (!peaks_.empty()) {
    emit_anchor(0);
    peaks_.pop_front();
  }
}

void LandmarkExtractor::on_peaks(const std::vector<SpectralPeak>& peaks, int watermark) {
  num_peaks_ += peaks.size();
  peaks_.insert(peaks_.end(), peaks.begin(), peaks.end());
  // An anchor is complete once every peak up to max_dt frames after it has arrived.
  while (!peaks_.empty() && peaks_.front().frame + params_.max_dt < watermark) {
    emit_anchor(0);
    peaks_.pop_front();
  }
}

void LandmarkExtractor::emit_anchor(size_t i) {
  const SpectralPeak& a = peaks_[i];
  const SpectralPeak* targets[16];
  int n = 0;
  for (size_t j = i + 1; j < peaks_.size() && n < params_.fanout; ++j) {
    const SpectralPeak& p = peaks_[j];
    int dt = p.frame - a.frame;
    if (dt > params_.max_dt) break;
    if (dt < params_.min_dt || std::fabs(p.pitch - a.pitch) > params_.max_df) continue;
    targets[n++] = &p;
  }
  for (int x = 0; x < n; ++x) {
    for (int y = x + 1; y < n; ++y) {
      const SpectralPeak& b = *targets[x];
      const SpectralPeak& c = *targets[y];
      float span = c.time - a.time;
      if (span <= 0.5f) continue;
      // Three peaks on one pitch are a sustained partial sampled at arbitrary instants: such
      // triplets line up with any offset of any held note and only produce false alignments.
      if (std::fabs(b.pitch - a.pitch) < kSamePitch && std::fabs(c.pitch - a.pitch) < kSamePitch)
        continue;
      TripletDescriptor d;
      d.frame = a.frame;
      d.pitch = a.pitch;
      d.ratio = std::clamp((b.time - a.time) / span, 0.0f, 1.0f);
      d.d1 = b.pitch - a.pitch;
      d.d2 = c.pitch - a.pitch;
      d.span = span;
      ++num_triplets_;
      sink_(d);
    }
  }
}

LayeredExtractor::LayeredExtractor(const std::vector<LandmarkParams>& layers,
                                   const LandmarkExtractor::TripletSink& sink, FrameTap tap)
    : tap_(std::move(tap)) {
  if (layers.empty()) throw Error("no landmark layer to extract");
  const nlohmann::json geometry = layers.front().hash_identity();
  for (const LandmarkParams& p : layers) {
    if (p.hash_identity() != geometry)
      throw Error("landmark layers must share their spectrogram and hash settings");
    layers_.push_back(std::make_unique<LandmarkExtractor>(p, sink, false));
  }
  spectrogram_ = std::make_unique<LandmarkSpectrogram>(layers.front(),
                                                       [this](int frame, const float* log_power) {
                                                         for (auto& e : layers_)
                                                           e->push_frame(frame, log_power);
                                                         if (tap_) tap_(frame, log_power);
                                                       });
}

void LayeredExtractor::consume(const float* samples, size_t count) {
  spectrogram_->push(samples, count);
}

void LayeredExtractor::finish() {
  spectrogram_->finish();
  for (auto& e : layers_) e->finish();
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
