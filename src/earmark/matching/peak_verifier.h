#pragma once
// A second look at a landmark alignment, with all of the reference's spectral peaks instead of
// only those whose triplets the query reproduced. Under heavy noise a true alignment keeps a
// dozen landmarks, no more than chance alignments in dense music gather, but still a fifth of
// its reference's peaks, where a chance alignment keeps a few per cent: every reference peak
// under the aligned query is looked for in the query's peaks, and the count is compared with
// the counts of the same pair of recordings at wrong alignments (shifted by fractions of a
// second), which is what chance gives in this very music.
#include <cstdint>
#include <vector>

#include "earmark/index/landmark_index.h"
#include "earmark/landmarks/landmark_params.h"
#include "earmark/landmarks/spectral_peak.h"
#include "earmark/matching/landmark_matcher.h"

namespace earmark {

struct PeakVerification {
  int reference_peaks = 0;  // reference peaks under the aligned query
  int matched = 0;          // of them, those with a query peak where the alignment puts them
  // `matched` expected at a wrong alignment: the mean share of the reference peaks found at the
  // wrong alignments (those with at least half as many reference peaks), times reference_peaks.
  double chance = 0;
  // (matched - chance) / sqrt(chance + 1); 0 when there was nothing to compare (no reference
  // peaks, or a reference too short for two wrong alignments).
  double significance = 0;
};

class PeakVerifier {
 public:
  PeakVerifier(const LandmarkParams& params, const LandmarkIndex& index);

  // The query's peaks (the dense layer's), in any order and in as many calls as convenient.
  void add_query_peaks(const std::vector<SpectralPeak>& peaks);
  size_t query_peaks() const { return query_.size(); }

  // Verifies `m` against the reference occupying [base, base + count) of the global timeline,
  // over the matched stretch of the query widened by a margin on each side (the alignment holds
  // there too when the recordings really are one; a long query's other content is left out).
  PeakVerification verify(const LandmarkMatch& m, uint64_t base, uint32_t count);

 private:
  struct QueryPeak {
    int32_t frame;
    float pitch;
  };
  // Reference peaks whose mapped place (frame, pitch) has a query peak, at alignment shift `lag`
  // (reference frames) and query-side offset `nudge` (query frames).
  int count_matched(double q0, double r0, double speed, double shift, double lag,
                    double nudge) const;
  int best_matched(double q0, double r0, double speed, double shift, double lag) const;

  LandmarkParams params_;
  const LandmarkIndex& index_;
  std::vector<QueryPeak> query_;
  bool sorted_ = true;
  std::vector<ReferencePeak> reference_;  // scratch: the peaks of the verified stretch
};

}  // namespace earmark
