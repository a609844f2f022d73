#pragma once
// Triplet landmarks: an anchor peak and two later peaks. What a triplet hashes is chosen to
// survive tempo and pitch change: the ratio of its two time differences (unchanged by tempo)
// and the pitch intervals between its peaks (unchanged by a pitch shift). Only two coarse,
// variant components are added for entropy: the log of its time span and the anchor's pitch
// band; queries probe the neighbouring cells those can move to.
#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "earmark/landmarks/landmark_params.h"
#include "earmark/landmarks/spectral_peak.h"

namespace earmark {

struct TripletDescriptor {
  int32_t frame = 0;   // anchor frame
  float pitch = 0.0f;  // anchor pitch, semitones
  float ratio = 0.0f;  // (t2 - t1) / (t3 - t1), in (0, 1]
  float d1 = 0.0f;     // pitch2 - pitch1, semitones
  float d2 = 0.0f;     // pitch3 - pitch1, semitones
  float span = 0.0f;   // t3 - t1, frames
};

// A stored landmark: hash key, anchor frame, and a fine code of the anchor pitch that lets the
// matcher estimate the pitch shift of a query.
struct Landmark {
  uint32_t key = 0;
  uint32_t frame = 0;
  uint8_t pitch_code = 0;
};

// Peaks -> triplets, streaming: every anchor is paired with the first `fanout` later peaks in its
// target zone once all of them can have arrived (max_dt frames behind the picker's watermark).
class TripletBuilder {
 public:
  using TripletSink = std::function<void(const TripletDescriptor&)>;

  TripletBuilder(const LandmarkParams& params, TripletSink sink);

  // Peaks in time order; every peak before `watermark` has been delivered (PeakPicker's sink).
  void push_peaks(const std::vector<SpectralPeak>& peaks, int watermark);
  // Emits the anchors still waiting for targets; call once after the last peaks.
  void finish();

  size_t num_peaks() const { return num_peaks_; }
  size_t num_triplets() const { return num_triplets_; }

 private:
  void emit_front();

  LandmarkParams params_;
  TripletSink sink_;
  std::deque<SpectralPeak> peaks_;
  size_t num_peaks_ = 0, num_triplets_ = 0;
};

class TripletQuantizer {
 public:
  explicit TripletQuantizer(const LandmarkParams& params);

  uint32_t key(const TripletDescriptor& d) const;
  // Keys of every cell a reference triplet could have fallen in, given this query triplet, the
  // tolerated tempo and pitch change, and quantisation near cell edges. Appends to `out`.
  void probe_keys(const TripletDescriptor& d, std::vector<uint32_t>& out) const;

  // Anchor pitch in quarter semitones, modulo 256: differences of codes give the pitch shift.
  static uint8_t pitch_code(float pitch);
  // Signed difference query - reference in semitones.
  static float pitch_shift(uint8_t query_code, uint8_t reference_code);

 private:
  struct Cells {
    int lo, hi;
  };
  Cells cells(float y, int count, float below, float above) const;
  uint32_t pack(int ratio, int d1, int d2, int span, int band) const;

  LandmarkParams p_;
  float min_pitch_;
  int d_cells_, span_cells_, band_cells_;
};

}  // namespace earmark
