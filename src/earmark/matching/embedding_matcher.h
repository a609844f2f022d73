#pragma once
// Sequence matching of a query's window embeddings against the references' (the embedding stage).
// Each query window's nearest reference windows vote for a (reference, time offset); the best
// candidates are then scored over the whole aligned sequence with the full-precision vectors:
// the mean, over the query's windows, of the similarity to the reference window at the aligned
// time. A single window can look like many places; a sequence that stays aligned cannot.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "earmark/index/vector_index.h"

namespace earmark {

// Vector ids: reference ordinal in the high bits, window number in the low 24 (2.3 h of
// windows at a 0.5 s hop... per reference: 8.4 M windows).
constexpr int kWindowBits = 24;
inline int64_t window_id(uint32_t reference, uint32_t window) {
  return (int64_t(reference) << kWindowBits) | int64_t(window);
}
inline uint32_t reference_of(int64_t id) { return uint32_t(id >> kWindowBits); }
inline uint32_t window_of(int64_t id) { return uint32_t(id & ((int64_t(1) << kWindowBits) - 1)); }

// The references' full-precision window vectors (for re-scoring), each reference's rows
// contiguous, windows reference_hop_s apart.
class ReferenceVectors {
 public:
  virtual ~ReferenceVectors() = default;
  virtual size_t windows(uint32_t reference) const = 0;  // 0 for an unknown or removed one
  virtual const float* vector(uint32_t reference, size_t window) const = 0;
};

struct EmbeddingMatchOptions {
  int neighbours = 16;      // per query window
  int candidates = 24;      // (reference, offset) pairs scored over the whole sequence
  double vote_floor = 0.3;  // similarities below this do not vote
  // The matched segment: the run of aligned query windows that maximises the sum of
  // (similarity - segment_floor). A reference excerpt inside unrelated audio is scored on its
  // own span, not diluted by the rest of the query.
  // Similarities are taken relative to each query window's background: the similarity of its
  // last (neighbours-th) neighbour. A window that resembles much of the catalogue (silence, a
  // drone, noise) then counts for little, a window that singles one place out for much.
  double segment_floor = 0.1;
  // The background is at least this: in a small catalogue the 16th neighbour is far off even for
  // windows that resemble much music, and margins over it would mean little.
  double background_floor = 0.5;
  // Speed changes tried when scoring a candidate (reference seconds per query second, 1 +- this,
  // in steps of speed_step; 0: off). The network tolerates a few per cent, but over a long query
  // a fixed offset drifts off the reference windows: 3 % over 10 s is 0.3 s.
  double max_speed_change = 0.06;
  double speed_step = 0.015;
  int speed_candidates = 4;  // the strongest candidates at speed 1 that are tried at the others
  // A match's decision value (EmbeddingMatch::decision): its strength, the segment's mean margin
  // plus length_bonus * ln(segment length in 0.1 s steps), less runner_up_weight times the
  // strongest match of another reference for the same query. Similarities of one query are not
  // comparable with another's: a noisy or generic query is a little similar to much of the
  // catalogue, and its best chance alignment then looks as good as another query's true one.
  // What a true match has and a chance one lacks is a lead over every other reference.
  double length_bonus = 0.05;
  double runner_up_weight = 0.5;
  double min_score = 0.0;  // matches scoring below are dropped (the scanner decides)
  int max_matches = 10;
};

struct EmbeddingMatch {
  uint32_t reference = 0;
  double offset_s = 0;  // reference time minus query time, at query_start
  double speed = 1.0;   // reference seconds per query second
  double query_start = 0, query_end = 0;
  double score = 0;   // mean aligned similarity over the matched segment's windows
  double margin = 0;  // mean of (similarity - background) over the segment
  int windows = 0;    // query windows in the matched segment
  // Sum of (similarity - background - segment_floor) over the segment: grows with both how
  // distinct and how long the match is.
  double evidence = 0;
  double strength = 0;   // margin plus the length bonus (EmbeddingMatchOptions)
  double runner_up = 0;  // the strongest other reference's strength, at least 0
  double decision = 0;   // strength - runner_up_weight * runner_up

  // The reference time aligned with query time t.
  double reference_time(double t) const {
    return query_start + offset_s + (t - query_start) * speed;
  }
};

class EmbeddingMatcher {
 public:
  EmbeddingMatcher(const VectorIndex& index, const ReferenceVectors& vectors,
                   double reference_hop_s, const EmbeddingMatchOptions& options = {});
  // query: windows x dim row-major, windows query_hop_s apart; window_s is a window's length.
  // `background`, when given, receives each query window's background similarity, which
  // score_at() needs.
  std::vector<EmbeddingMatch> match(const float* query, size_t windows, double query_hop_s,
                                    double window_s,
                                    std::vector<float>* background = nullptr) const;
  // The query scored against one reference about one alignment, reference time offset_s + t *
  // speed for query time t (refined by up to two query hops either way, and over the speeds the
  // options allow), against the backgrounds match() gave for this query: how another stage's
  // candidate looks to this one. windows == 0 in the result when the query does not overlap the
  // reference there.
  EmbeddingMatch score_at(const float* query, size_t windows, double query_hop_s, double window_s,
                          uint32_t reference, double offset_s, double speed,
                          const std::vector<float>& background) const;

 private:
  int speed_steps() const;  // either side of speed 1
  // Speeds pivot on the query's middle, where a drifting alignment strays least from the votes.
  static double pivot_of(size_t windows, double query_hop_s) {
    return windows > 0 ? double(windows - 1) / 2 * query_hop_s : 0.0;
  }
  // The query scored about reference time pivot + pivot_offset_s at the pivot, over the speeds
  // given (1 +- steps of speed_step).
  EmbeddingMatch score_over(const float* query, size_t windows, double query_hop_s, double window_s,
                            uint32_t reference, double pivot_offset_s,
                            const std::vector<float>& background, int speed_steps) const;
  // Per-window similarity of the query against one reference (-2 where the window falls outside
  // the reference): query time t is compared with reference time pivot + offset +
  // (t - pivot) * speed.
  void aligned_similarities(const float* query, size_t windows, double query_hop_s, uint32_t ref,
                            double pivot, double offset, double speed,
                            std::vector<float>& out) const;
  // The best segment of (similarity - background); backgrounds are per window.
  // The best segment of those similarities: its mean, first and last window.
  struct Segment {
    double mean = -2, margin = 0, gain = -1e300;
    size_t first = 0, last = 0;
  };
  Segment best_segment(const std::vector<float>& similarities,
                       const std::vector<float>& background) const;

  const VectorIndex& index_;
  const ReferenceVectors& vectors_;
  double reference_hop_s_;
  EmbeddingMatchOptions options_;
};

}  // namespace earmark
