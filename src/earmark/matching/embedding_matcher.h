#pragma once
// Sequence matching of a query's window embeddings against the references' (the embedding stage).
// Each query window's nearest reference windows vote for a (reference, time offset); the best
// candidates are then scored over the whole aligned sequence with the full-precision vectors:
// each reference window in the aligned span against the query window nearest to it. A single
// window can look like many places; a sequence that stays aligned cannot.
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
  // Similarities are taken relative to each query window's background against the candidate
  // reference: the similarity of its nearest window of another reference (of its last,
  // neighbours-th, neighbour when all are of this one). A window that resembles much of the
  // catalogue (silence, a drone, noise) then counts for little, a window that singles one
  // reference out for much, and a reference's own repeats (a chorus, a loop) do not count
  // against it.
  double segment_floor = 0.1;
  // The background is at least this: in a small catalogue the nearest other reference can be far
  // off even for windows that resemble much music, and margins over it would mean little.
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
  // What a true match has and a chance one lacks is a lead over every other reference. With the
  // per-reference background the margin is already that lead, window by window, so the
  // runner-up term is off: on the development split any weight from 0.25 to 1 cost a few 1-2 s
  // queries at zero errors. The length bonus and the threshold's growth trade against each
  // other along a ridge; 0.025 with a growth of 0.04 sits at its top (README).
  double length_bonus = 0.025;
  double runner_up_weight = 0.0;
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
  int windows = 0;    // query windows from the segment's first compared one to its last
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

// Each query window's nearest reference windows, as the vector index returned them: the
// backgrounds of every alignment scored for this query are drawn from them.
struct QueryNeighbours {
  int k = 0;
  std::vector<float> similarities;  // windows x k, best first
  std::vector<int64_t> ids;         // window_id()s, -1 where the index had fewer
  size_t windows() const { return k > 0 ? similarities.size() / size_t(k) : 0; }
};

class EmbeddingMatcher {
 public:
  EmbeddingMatcher(const VectorIndex& index, const ReferenceVectors& vectors,
                   double reference_hop_s, const EmbeddingMatchOptions& options = {});
  // query: windows x dim row-major, windows query_hop_s apart; window_s is a window's length.
  // `neighbours`, when given, receives the query windows' neighbours, which score_at() needs.
  std::vector<EmbeddingMatch> match(const float* query, size_t windows, double query_hop_s,
                                    double window_s, QueryNeighbours* neighbours = nullptr) const;
  // The query scored against one reference about one alignment, reference time offset_s + t *
  // speed for query time t (refined by up to two query hops either way, and over the speeds the
  // options allow), against the neighbours match() gave for this query: how another stage's
  // candidate looks to this one. windows == 0 in the result when the query does not overlap the
  // reference there.
  EmbeddingMatch score_at(const float* query, size_t windows, double query_hop_s, double window_s,
                          uint32_t reference, double offset_s, double speed,
                          const QueryNeighbours& neighbours) const;

 private:
  int speed_steps() const;  // either side of speed 1
  // Whether a neighbour the index returned is a window of a catalogued reference: a graph index
  // keeps a removed reference's windows until compaction, and they neither vote nor set a
  // background.
  bool live(int64_t id) const { return id >= 0 && vectors_.windows(reference_of(id)) > 0; }
  // Speeds pivot on the query's middle, where a drifting alignment strays least from the votes.
  static double pivot_of(size_t windows, double query_hop_s) {
    return windows > 0 ? double(windows - 1) / 2 * query_hop_s : 0.0;
  }
  // Each query window's background against `reference`: the similarity of its nearest window
  // of another reference (the k-th neighbour's when all k are of this one), at least
  // background_floor.
  void background_for(uint32_t reference, const QueryNeighbours& neighbours,
                      std::vector<float>& out) const;
  // The query scored about reference time pivot + pivot_offset_s at the pivot, over the speeds
  // given (1 +- steps of speed_step).
  EmbeddingMatch score_over(const float* query, size_t windows, double query_hop_s, double window_s,
                            uint32_t reference, double pivot_offset_s,
                            const QueryNeighbours& neighbours, int speed_steps) const;
  // Per-window similarity of the query against one reference, query time t against the nearest
  // reference window to time pivot + offset + (t - pivot) * speed; kOutside where that falls
  // outside the reference, kBetween where another query window is nearer to that reference
  // window.
  static constexpr float kOutside = -2.0f, kBetween = -3.0f;
  void aligned_similarities(const float* query, size_t windows, double query_hop_s, uint32_t ref,
                            double pivot, double offset, double speed,
                            std::vector<float>& out) const;
  // The best segment of (similarity - background), backgrounds per window: its mean and mean
  // margin over the windows compared, its first and last window compared, and the span it
  // covers: those widened by up to `reach` uncompared windows either side.
  struct Segment {
    double mean = -2, margin = 0, gain = -1e300;
    size_t first = 0, last = 0, span_first = 0, span_last = 0;
    int compared = 0;
  };
  Segment best_segment(const std::vector<float>& similarities, const std::vector<float>& background,
                       int reach) const;

  const VectorIndex& index_;
  const ReferenceVectors& vectors_;
  double reference_hop_s_;
  EmbeddingMatchOptions options_;
};

}  // namespace earmark
