#include "earmark/matching/peak_verifier.h"

#include <algorithm>
#include <cmath>

namespace earmark {

namespace {

// A reference peak is found when a query peak lies within these of where the alignment puts it.
constexpr double kFrameTolerance = 1.5;
constexpr float kPitchTolerance = 0.5f;  // semitones
// The matcher's line is fitted to a few landmarks and may be off by a few frames; the count is
// the best over query-side nudges up to this many frames (chance counts get the same search).
constexpr int kMaxNudge = 4;
// Wrong alignments for the chance count: shifts of the reference by multiples of an odd step
// (0.37 s), so that beat-aligned repetitions of the music are not hit on every shift.
constexpr int kLagStep = 37;
constexpr int kLags[] = {-5, -4, -3, -2, 2, 3, 4, 5};
// Query time around the matched stretch that is verified too.
constexpr double kMarginSeconds = 2.0;

}  // namespace

PeakVerifier::PeakVerifier(const LandmarkParams& params, const LandmarkIndex& index)
    : params_(params), index_(index) {}

void PeakVerifier::add_query_peaks(const std::vector<SpectralPeak>& peaks) {
  for (const SpectralPeak& p : peaks) {
    if (!query_.empty() && p.frame < query_.back().frame) sorted_ = false;
    query_.push_back({p.frame, p.pitch});
  }
}

int PeakVerifier::count_matched(double q0, double r0, double speed, double shift, double lag,
                                double nudge) const {
  int matched = 0;
  for (const ReferencePeak& r : reference_) {
    const double tq = q0 + (double(r.frame) - r0 - lag) / speed + nudge;
    const float pitch = float(r.semitones() + shift);
    auto it = std::lower_bound(query_.begin(), query_.end(), tq - kFrameTolerance,
                               [](const QueryPeak& p, double t) { return double(p.frame) < t; });
    for (; it != query_.end() && double(it->frame) <= tq + kFrameTolerance; ++it) {
      if (std::fabs(it->pitch - pitch) <= kPitchTolerance) {
        ++matched;
        break;
      }
    }
  }
  return matched;
}

int PeakVerifier::best_matched(double q0, double r0, double speed, double shift, double lag) const {
  int best = 0;
  for (int nudge = -kMaxNudge; nudge <= kMaxNudge; ++nudge)
    best = std::max(best, count_matched(q0, r0, speed, shift, lag, nudge));
  return best;
}

PeakVerification PeakVerifier::verify(const LandmarkMatch& m, uint64_t base, uint32_t count) {
  PeakVerification v;
  if (query_.empty() || !(m.speed > 0)) return v;
  if (!sorted_) {
    std::stable_sort(query_.begin(), query_.end(),
                     [](const QueryPeak& a, const QueryPeak& b) { return a.frame < b.frame; });
    sorted_ = true;
  }
  const double margin = kMarginSeconds / params_.frame_seconds();
  const double q0 = params_.time_frame(m.query_start);
  const double r0 = double(base) + params_.time_frame(m.ref_start);
  const double qa = std::max(0.0, q0 - margin);
  const double qb =
      std::min(double(query_.back().frame) + 1, params_.time_frame(m.query_end) + margin);
  if (qb <= qa) return v;

  const double ref_a = r0 + (qa - q0) * m.speed, ref_b = r0 + (qb - q0) * m.speed;
  const double span_a = double(base), span_b = double(base) + count;
  auto fetch = [&](double lag) {
    reference_.clear();
    const double a = std::max(span_a, ref_a + lag), b = std::min(span_b, ref_b + lag);
    if (b > a) index_.peaks(uint32_t(std::ceil(a)), uint32_t(std::ceil(b)), reference_);
  };
  fetch(0);
  v.reference_peaks = int(reference_.size());
  if (v.reference_peaks == 0) return v;
  v.matched = best_matched(q0, r0, m.speed, m.pitch_shift, 0);
  // Chance as a share of the reference peaks compared: near either end of a reference a shifted
  // stretch holds fewer of them, which must not pass for a lower chance of finding one.
  double share = 0;
  int lags = 0;
  for (int k : kLags) {
    fetch(double(k) * kLagStep);
    if (2 * reference_.size() < size_t(v.reference_peaks)) continue;
    share += double(best_matched(q0, r0, m.speed, m.pitch_shift, double(k) * kLagStep)) /
             double(reference_.size());
    ++lags;
  }
  if (lags < 2) return v;  // too short a reference to tell chance from alignment
  v.chance = share / lags * v.reference_peaks;
  v.significance = (v.matched - v.chance) / std::sqrt(v.chance + 1.0);
  return v;
}

}  // namespace earmark
