#include "earmark/landmarks/triplet.h"

#include <algorithm>
#include <cmath>

#include "earmark/common/hash.h"

namespace earmark {

namespace {

constexpr float kSamePitch = 0.5f;  // semitones

}  // namespace

TripletBuilder::TripletBuilder(const LandmarkParams& params, TripletSink sink)
    : params_(params), sink_(std::move(sink)) {
  params_.validate();  // emit_front's target buffer relies on fanout <= 16
}

void TripletBuilder::push_peaks(const std::vector<SpectralPeak>& peaks, int watermark) {
  num_peaks_ += peaks.size();
  peaks_.insert(peaks_.end(), peaks.begin(), peaks.end());
  // An anchor is complete once every peak up to max_dt frames after it has arrived.
  while (!peaks_.empty() && peaks_.front().frame + params_.max_dt < watermark) {
    emit_front();
    peaks_.pop_front();
  }
}

void TripletBuilder::finish() {
  while (!peaks_.empty()) {
    emit_front();
    peaks_.pop_front();
  }
}

void TripletBuilder::emit_front() {
  const SpectralPeak& a = peaks_.front();
  const SpectralPeak* targets[16];
  int n = 0;
  for (size_t j = 1; j < peaks_.size() && n < params_.fanout; ++j) {
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

TripletQuantizer::TripletQuantizer(const LandmarkParams& params) : p_(params) {
  min_pitch_ = hz_to_pitch(params.min_hz);
  d_cells_ = int(std::ceil(2 * params.max_df / params.df_step));
  span_cells_ =
      int(std::ceil(std::log(double(params.max_dt) / params.min_dt) / params.span_step)) + 1;
  band_cells_ = int((hz_to_pitch(params.max_hz) - min_pitch_) / params.band_width) + 1;
}

uint32_t TripletQuantizer::pack(int ratio, int d1, int d2, int span, int band) const {
  uint32_t v = uint32_t(band);
  v = (v << 5) | uint32_t(span);
  v = (v << 6) | uint32_t(d2);
  v = (v << 6) | uint32_t(d1);
  v = (v << 3) | uint32_t(ratio);
  return mix32(v);
}

TripletQuantizer::Cells TripletQuantizer::cells(float y, int count, float below,
                                                float above) const {
  int lo = int(std::floor(y - below)), hi = int(std::floor(y + above));
  return {std::clamp(lo, 0, count - 1), std::clamp(hi, 0, count - 1)};
}

uint32_t TripletQuantizer::key(const TripletDescriptor& d) const {
  auto cell = [](float y, int count) { return std::clamp(int(std::floor(y)), 0, count - 1); };
  float span_y = std::log(std::max(d.span, 1e-3f) / p_.min_dt) / p_.span_step;
  return pack(cell(d.ratio * p_.ratio_levels, p_.ratio_levels),
              cell((d.d1 + p_.max_df) / p_.df_step, d_cells_),
              cell((d.d2 + p_.max_df) / p_.df_step, d_cells_), cell(span_y, span_cells_),
              cell((d.pitch - min_pitch_) / p_.band_width, band_cells_));
}

void TripletQuantizer::probe_keys(const TripletDescriptor& d, std::vector<uint32_t>& out) const {
  const float m = p_.probe_margin;
  Cells r = cells(d.ratio * p_.ratio_levels, p_.ratio_levels, m, m);
  Cells a = cells((d.d1 + p_.max_df) / p_.df_step, d_cells_, m, m);
  Cells b = cells((d.d2 + p_.max_df) / p_.df_step, d_cells_, m, m);
  // Reference span = speed x query span, speed in [1 - T, 1 + T].
  float span_y = std::log(std::max(d.span, 1e-3f) / p_.min_dt) / p_.span_step;
  float slow = -std::log(1.0f - p_.max_tempo_change) / p_.span_step;
  float fast = std::log(1.0f + p_.max_tempo_change) / p_.span_step;
  Cells s = cells(span_y, span_cells_, slow + m, fast + m);
  // Reference pitch = query pitch - shift, shift in [-P, P].
  float band_y = (d.pitch - min_pitch_) / p_.band_width;
  float pitch_cells = p_.max_pitch_shift / p_.band_width;
  Cells n = cells(band_y, band_cells_, pitch_cells + m, pitch_cells + m);
  for (int i = r.lo; i <= r.hi; ++i)
    for (int j = a.lo; j <= a.hi; ++j)
      for (int k = b.lo; k <= b.hi; ++k)
        for (int l = s.lo; l <= s.hi; ++l)
          for (int o = n.lo; o <= n.hi; ++o) out.push_back(pack(i, j, k, l, o));
}

uint8_t TripletQuantizer::pitch_code(float pitch) {
  return uint8_t(int(std::lround(pitch * 4.0f)) & 0xff);
}

float TripletQuantizer::pitch_shift(uint8_t query_code, uint8_t reference_code) {
  return float(int8_t(uint8_t(query_code - reference_code))) / 4.0f;
}

}  // namespace earmark
