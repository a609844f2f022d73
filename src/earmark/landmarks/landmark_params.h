#pragma once
// Settings of the landmark stage. Those that decide what a hash means (spectrogram geometry and
// hash quantisation) are written into every index and must be equal at query time; the density
// settings may differ: queries are extracted denser than references, which costs no index space
// and lets more of the reference's triplets find a partner under noise.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace earmark {

struct LandmarkParams {
  // Spectrogram: 64 ms Hann frames every 10 ms at 16 kHz; peaks between min_hz and max_hz.
  int sample_rate = 16000;
  int fft_size = 1024;
  int hop = 160;
  float min_hz = 150.0f;
  float max_hz = 7500.0f;

  // Peaks: local maxima of the log-magnitude in a (2*time_radius+1) x (2*freq_radius+1)
  // neighbourhood, at most peaks_per_second of them (the most prominent) per second.
  int peak_time_radius = 4;
  int peak_freq_radius = 8;
  int peaks_per_second = 24;
  float min_prominence = 1.0f;  // natural-log units above the frame's band-local mean
  // The band-local mean is taken over log-power floored at this many natural-log units below the
  // frame's mean power. Without a floor, spectral holes (a low-bitrate codec zeroes whole bands,
  // a quiet passage has nothing above its roll-off) drag the mean down and make any surviving
  // island look prominent: an mp3 at 32 kbit/s then spends the peak budget on coding artefacts.
  // 0 turns it off (indexes written before it existed).
  float level_floor = 1.5f;

  // Triplets: an anchor and two later peaks among the first `fanout` within
  // [min_dt, max_dt] frames and +-max_df semitones of it.
  int fanout = 4;
  int min_dt = 2;
  int max_dt = 60;
  float max_df = 16.0f;

  // Hash quantisation (shared by index and query).
  int ratio_levels = 8;      // (t2-t1)/(t3-t1)
  float df_step = 0.667f;    // semitones, for lf2-lf1 and lf3-lf1
  float span_step = 0.113f;  // natural log of (t3-t1), i.e. ~12 % per cell
  float band_width = 4.0f;   // semitones, coarse band of the anchor

  // Density of query extraction, and of short references (sound logos): a short recording gives
  // few landmarks at the normal density, and costs little index space at a higher one.
  int query_peaks_per_second = 40;
  int query_fanout = 5;
  int short_peaks_per_second = 48;
  int short_fanout = 6;
  double short_seconds = 15.0;

  // Sparse layer: short references and queries are also extracted with only their most
  // prominent peaks. A sound logo mixed into other audio keeps its strongest peaks but loses its
  // weak ones, and with them the triplets its dense layer built around them; the sparse layer's
  // triplets join strong peaks only. 0 turns the layer off.
  int sparse_peaks_per_second = 15;
  int sparse_fanout = 5;

  // Query-time tolerance (not part of the index identity).
  float max_tempo_change = 0.06f;  // relative
  float max_pitch_shift = 2.3f;    // semitones
  float probe_margin = 0.25f;      // probe the neighbouring cell when this close to its edge

  // The settings a query must share with the index it searches.
  nlohmann::json hash_identity() const;
  // The settings, besides the spectrogram's, that decide which points are peak candidates (the
  // density cap only keeps the most prominent of them): layers that share a peak picker must
  // agree on these.
  nlohmann::json peak_identity() const;
  nlohmann::json to_json() const;
  static LandmarkParams from_json(const nlohmann::json& j);
  // Throws earmark::Error on absurd values.
  void validate() const;

  // The settings to extract a query with, and a reference of this duration / kind.
  LandmarkParams for_query() const;
  LandmarkParams for_reference(double duration_s, bool short_sound) const;
  bool is_short(double duration_s, bool short_sound) const {
    return short_sound || (duration_s > 0 && duration_s < short_seconds);
  }
  // Every extraction a query / a reference gets: the dense layer first, then the sparse one.
  std::vector<LandmarkParams> query_layers() const;
  std::vector<LandmarkParams> reference_layers(double duration_s, bool short_sound) const;

  double frame_seconds() const { return double(hop) / sample_rate; }
  // Time of a frame's centre: what every reported time refers to.
  double frame_time(double frame) const { return (frame * hop + fft_size / 2.0) / sample_rate; }
  // And back: the (fractional) frame whose centre is at this time.
  double time_frame(double seconds) const { return (seconds * sample_rate - fft_size / 2.0) / hop; }
};

}  // namespace earmark
