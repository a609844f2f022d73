#include "earmark/landmarks/landmark_params.h"

#include <cmath>

#include "earmark/common/error.h"

namespace earmark {

nlohmann::json LandmarkParams::hash_identity() const {
  return {{"sample_rate", sample_rate}, {"fft_size", fft_size},   {"hop", hop},
          {"min_hz", min_hz},           {"max_hz", max_hz},       {"min_dt", min_dt},
          {"max_dt", max_dt},           {"max_df", max_df},       {"ratio_levels", ratio_levels},
          {"df_step", df_step},         {"span_step", span_step}, {"band_width", band_width}};
}

nlohmann::json LandmarkParams::peak_identity() const {
  return {{"peak_time_radius", peak_time_radius},
          {"peak_freq_radius", peak_freq_radius},
          {"min_prominence", min_prominence},
          {"level_floor", level_floor}};
}

nlohmann::json LandmarkParams::to_json() const {
  nlohmann::json j = hash_identity();
  j.update(peak_identity());
  j["peaks_per_second"] = peaks_per_second;
  j["fanout"] = fanout;
  j["max_tempo_change"] = max_tempo_change;
  j["max_pitch_shift"] = max_pitch_shift;
  j["probe_margin"] = probe_margin;
  j["query_peaks_per_second"] = query_peaks_per_second;
  j["query_fanout"] = query_fanout;
  j["short_peaks_per_second"] = short_peaks_per_second;
  j["short_fanout"] = short_fanout;
  j["short_seconds"] = short_seconds;
  j["sparse_peaks_per_second"] = sparse_peaks_per_second;
  j["sparse_fanout"] = sparse_fanout;
  return j;
}

LandmarkParams LandmarkParams::from_json(const nlohmann::json& j) {
  LandmarkParams p;
  auto get = [&](const char* k, auto& v) {
    if (j.contains(k)) v = j.at(k).get<std::decay_t<decltype(v)>>();
  };
  get("sample_rate", p.sample_rate);
  get("fft_size", p.fft_size);
  get("hop", p.hop);
  get("min_hz", p.min_hz);
  get("max_hz", p.max_hz);
  get("peak_time_radius", p.peak_time_radius);
  get("peak_freq_radius", p.peak_freq_radius);
  get("peaks_per_second", p.peaks_per_second);
  get("min_prominence", p.min_prominence);
  // Settings stored before the floor existed were extracted without it.
  p.level_floor = 0.0f;
  get("level_floor", p.level_floor);
  get("fanout", p.fanout);
  get("min_dt", p.min_dt);
  get("max_dt", p.max_dt);
  get("max_df", p.max_df);
  get("ratio_levels", p.ratio_levels);
  get("df_step", p.df_step);
  get("span_step", p.span_step);
  get("band_width", p.band_width);
  get("max_tempo_change", p.max_tempo_change);
  get("max_pitch_shift", p.max_pitch_shift);
  get("probe_margin", p.probe_margin);
  get("query_peaks_per_second", p.query_peaks_per_second);
  get("query_fanout", p.query_fanout);
  get("short_peaks_per_second", p.short_peaks_per_second);
  get("short_fanout", p.short_fanout);
  get("short_seconds", p.short_seconds);
  get("sparse_peaks_per_second", p.sparse_peaks_per_second);
  get("sparse_fanout", p.sparse_fanout);
  p.validate();
  return p;
}

void LandmarkParams::validate() const {
  auto bad = [](const std::string& what) { throw Error("invalid landmark setting: " + what); };
  if (sample_rate < 4000 || sample_rate > 192000) bad("sample_rate must be in [4000, 192000]");
  if (fft_size < 64 || fft_size > 16384 || (fft_size & (fft_size - 1)) != 0)
    bad("fft_size must be a power of two in [64, 16384]");
  if (hop < 1 || hop > fft_size) bad("hop must be in [1, fft_size]");
  if (!(min_hz > 0 && max_hz > min_hz && max_hz <= sample_rate / 2.0))
    bad("need 0 < min_hz < max_hz <= sample_rate/2");
  if (peak_time_radius < 1 || peak_time_radius > 100) bad("peak_time_radius must be in [1, 100]");
  if (peak_freq_radius < 1 || peak_freq_radius > 200) bad("peak_freq_radius must be in [1, 200]");
  if (!(level_floor >= 0 && level_floor <= 20)) bad("level_floor must be in [0, 20] (0: none)");
  if (peaks_per_second < 1 || peaks_per_second > 1000) bad("peaks_per_second must be in [1, 1000]");
  for (int f : {fanout, query_fanout, short_fanout, sparse_fanout})
    if (f < 2 || f > 16) bad("fanout must be in [2, 16]");
  for (int d : {query_peaks_per_second, short_peaks_per_second})
    if (d < 1 || d > 1000) bad("peaks_per_second must be in [1, 1000]");
  if (sparse_peaks_per_second < 0 || sparse_peaks_per_second > 1000)
    bad("sparse_peaks_per_second must be in [0, 1000] (0: no sparse layer)");
  if (!(short_seconds >= 0 && short_seconds <= 3600)) bad("short_seconds must be in [0, 3600]");
  if (min_dt < 1 || max_dt <= min_dt || max_dt > 1000) bad("need 1 <= min_dt < max_dt <= 1000");
  if (!(max_df > 0 && max_df <= 48)) bad("max_df must be in (0, 48] semitones");
  if (ratio_levels < 2 || ratio_levels > 8) bad("ratio_levels must be in [2, 8]");
  if (!(df_step >= 0.1f && 2 * max_df / df_step <= 64)) bad("df_step too small for max_df");
  if (!(span_step >= 0.02f && std::log(double(max_dt) / min_dt) / span_step < 31))
    bad("span_step too small for max_dt/min_dt");
  if (!(band_width >= 1.0f && band_width <= 96.0f)) bad("band_width must be in [1, 96]");
  if (!(max_tempo_change >= 0 && max_tempo_change <= 0.5f)) bad("max_tempo_change in [0, 0.5]");
  if (!(max_pitch_shift >= 0 && max_pitch_shift <= 12)) bad("max_pitch_shift in [0, 12]");
  if (!(probe_margin >= 0 && probe_margin < 0.5f)) bad("probe_margin in [0, 0.5)");
}

LandmarkParams LandmarkParams::for_query() const {
  LandmarkParams q = *this;
  q.peaks_per_second = query_peaks_per_second;
  q.fanout = query_fanout;
  return q;
}

LandmarkParams LandmarkParams::for_reference(double duration_s, bool short_sound) const {
  LandmarkParams r = *this;
  if (is_short(duration_s, short_sound)) {
    r.peaks_per_second = short_peaks_per_second;
    r.fanout = short_fanout;
  }
  return r;
}

namespace {
LandmarkParams sparse_layer(const LandmarkParams& p) {
  LandmarkParams s = p;
  s.peaks_per_second = p.sparse_peaks_per_second;
  s.fanout = p.sparse_fanout;
  return s;
}
}  // namespace

std::vector<LandmarkParams> LandmarkParams::query_layers() const {
  std::vector<LandmarkParams> layers{for_query()};
  if (sparse_peaks_per_second > 0) layers.push_back(sparse_layer(*this));
  return layers;
}

std::vector<LandmarkParams> LandmarkParams::reference_layers(double duration_s,
                                                             bool short_sound) const {
  std::vector<LandmarkParams> layers{for_reference(duration_s, short_sound)};
  if (sparse_peaks_per_second > 0 && is_short(duration_s, short_sound))
    layers.push_back(sparse_layer(*this));
  return layers;
}

}  // namespace earmark
