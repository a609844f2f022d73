#pragma once
// Query triplets -> matches. Each triplet's probe keys are looked up in batches; every hit says
// "query frame tq may play global frame g". True matches line up on g = speed * tq + offset
// for one speed near 1 and one offset; random hits do not. The matcher works on windows of the
// query (so memory stays bounded on hours of audio): a coarse offset histogram proposes
// candidates (and a fine one thin alignments at the original speed), a fine search over speed
// and offset confirms them and fits the line, the pitch
// codes give the pitch shift, and detections of consecutive windows that continue one another
// are merged into one segment.
#include <cstdint>
#include <vector>

#include "earmark/index/landmark_index.h"
#include "earmark/landmarks/landmark_params.h"
#include "earmark/landmarks/triplet.h"
#include "earmark/matching/reference_timeline.h"

namespace earmark {

struct MatchOptions {
  int min_inliers = 8;       // inlier landmarks a candidate needs to be scored at all
  int window_frames = 2000;  // analysis window (20 s)
  int max_candidates = 40;   // per window
  int fine_candidates = 4;   // per window, from the fine offset histogram (0: none)
  int max_matches_per_window = 4;
  float inlier_tolerance = 2.5f;  // frames
  float pitch_tolerance = 1.0f;   // semitones around the match's pitch shift
};

struct LandmarkMatch {
  size_t ref = 0;          // ReferenceTimeline::Span::ref
  double query_start = 0;  // seconds
  double query_end = 0;
  double ref_start = 0;  // seconds within the reference
  double ref_end = 0;
  // Evidence above chance: distinct anchor pairs on the alignment, plus a quarter for each
  // further triplet of an anchor pair already counted (at most twice as many as there are
  // pairs, but for short references), minus the square root of the hits near the alignment
  // that do not fit it.
  // Random alignments in dense, repetitive music gather many inliers too, but only in proportion
  // to that background.
  double score = 0;
  double speed = 1.0;      // reference seconds per query second
  double pitch_shift = 0;  // semitones, query relative to reference
  // Evidence behind the score: inlier hits, distinct (query anchor, reference anchor) pairs
  // among them, distinct query frames, and hits near the alignment that did not fit it.
  int landmarks = 0;
  int anchors = 0;
  int frames = 0;
  int background = 0;
};

class LandmarkMatcher {
 public:
  LandmarkMatcher(const LandmarkParams& params, const LandmarkIndex& index,
                  const ReferenceTimeline& timeline, const MatchOptions& options = {});

  // Triplets arrive in about anchor frame order: several extraction layers may interleave, each
  // in order and lagging the others by less than half a window.
  void add(const TripletDescriptor& d);
  void finish();
  // Merged segments, best first.
  std::vector<LandmarkMatch> matches() const;

  size_t lookups() const { return lookups_; }
  size_t hits() const { return total_hits_; }

 private:
  struct Hit {
    int32_t tq;    // query frame
    uint32_t g;    // global reference frame
    float dpitch;  // query pitch - reference pitch, semitones
  };
  struct Segment {
    size_t ref;
    uint64_t base;
    double speed;  // line g = speed * tq + offset
    double offset;
    double pitch;
    int32_t q_first, q_last;
    std::vector<int32_t> inliers;  // inlier (tq, g) pairs, flattened, sorted
    int background = 0;
    bool short_reference = false;
  };

  void flush_lookups();
  void analyse_window(int32_t start, int32_t end);
  bool confirm(std::vector<Hit>& cand, double centre, Segment& out) const;
  void merge(Segment&& seg);

  LandmarkParams params_;
  const LandmarkIndex& index_;
  const ReferenceTimeline& timeline_;
  MatchOptions options_;
  TripletQuantizer quantizer_;

  std::vector<uint32_t> pending_keys_;
  std::vector<int32_t> pending_frames_;
  std::vector<uint8_t> pending_pitch_;
  std::vector<SearchHit> search_buffer_;
  std::vector<uint64_t> sort_scratch_;  // radix sort of a window's offset bins
  std::vector<Hit> hits_;               // hits of the current and next windows, sorted by tq
  int32_t window_start_ = 0;
  bool finished_ = false;
  std::vector<Segment> segments_;
  size_t lookups_ = 0, total_hits_ = 0;
};

}  // namespace earmark
