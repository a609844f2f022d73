#include "earmark/landmarks/triplet.h"

#include <algorithm>
#include <cmath>

namespace earmark {

namespace {

// A bijective 32-bit mixer: spreads packed cells evenly over the key space so the index
// directory on the top bits is balanced. Being a bijection, it loses no entropy.
uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

float hz_to_pitch(double hz) { return float(69.0 + 12.0 * std::log2(hz / 440.0)); }

}  // namespace

TripletQuantizer::TripletQuantizer(const LandmarkParams& params) : p_(params) {
  min_pitch_ = hz_to_pitch(params.min_hz);
  d_cells_ = int(std::ceil(2 * params.max_df / params.df_step));
  span_cells_ = int(std::ceil(std::log(double(params.max_dt) / params.min_dt) / params.span_step)) + 1;
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
