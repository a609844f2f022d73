#include "earmark/matching/logo_peak_matcher.h"

#include <algorithm>
#include <cmath>

#include "earmark/common/error.h"

namespace earmark {

namespace {

// Offsets this close to a block's best are part of its peak, not of the chance level.
constexpr int kPeakHalfWidth = 10;
// A spectrum without a single peak in a block still gets this many chance votes per offset, so
// that a handful of votes in near silence is not taken for a certainty.
constexpr double kMinChanceVotes = 0.05;
// A block shorter than this (the tail of a query) is evaluated over the last this-many offsets
// instead, so that its chance level rests on enough of them.
constexpr int kMinBlockOffsets = 200;
constexpr int kMaxDetectionsPerBlock = 4;

}  // namespace

double LogoPeakMatcher::poisson_surprise(int k, double lambda) {
  if (k <= 0 || !(lambda > 0) || k <= lambda) return 0.0;
  // P(X >= k) = pmf(k) * sum_{j >= k} lambda^(j-k) k!/j!; past the mean the terms fall fast.
  const double log_pmf = -lambda + k * std::log(lambda) - std::lgamma(k + 1.0);
  double sum = 0, term = 1;
  for (int j = k; j < k + 1000 && term > 1e-15 * sum; ++j) {
    sum += term;
    term *= lambda / (j + 1);
  }
  return std::max(0.0, -(log_pmf + std::log(sum)) / std::log(10.0));
}

LogoPeakMatcher::LogoPeakMatcher(std::vector<const LogoTemplate*> logos, LogoPeakOptions options)
    : options_(options) {
  if (options_.block_frames < 1) throw Error("logo peak matcher: block_frames must be positive");
  if (!(options_.bin_tolerance >= 0) || options_.frame_tolerance < 0)
    throw Error("logo peak matcher: tolerances must not be negative");
  for (size_t i = 0; i < logos.size(); ++i) {
    if (logos[i]->peaks().empty()) continue;
    logos_.push_back(logos[i]);
    logo_index_.push_back(i);
    longest_ = std::max(longest_, frames_of(*logos[i]));
  }
  // Offsets before the query's start find logos that began before it.
  base_ = -longest_ + 1;
}

void LogoPeakMatcher::push_peaks(const std::vector<SpectralPeak>& peaks, int watermark) {
  if (logos_.empty()) return;
  for (const SpectralPeak& p : peaks) held_.push_back({p.time, p.bin});
  last_frame_ = std::max(last_frame_, watermark - 1);
  const int block = options_.block_frames, tol = options_.frame_tolerance;
  // Offsets [base_, base_ + block) need the query's peaks up to base_ + block + longest_.
  while (watermark > base_ + block + longest_ + tol) {
    evaluate(base_, base_ + block);
    base_ += block;
    // Offsets from base_ on take votes from peaks at base_ - tol and later.
    held_.erase(held_.begin(), std::find_if(held_.begin(), held_.end(), [&](const QueryPeak& q) {
                  return q.frame >= base_ - tol - 1;
                }));
  }
}

void LogoPeakMatcher::finish() {
  if (logos_.empty() || last_frame_ < 0) return;
  const int end = last_frame_ + 1;
  if (base_ < end) evaluate(std::max(-longest_ + 1, std::min(base_, end - kMinBlockOffsets)), end);
  base_ = end;
  held_.clear();
}

void LogoPeakMatcher::evaluate(int first, int last) {
  const int n = last - first, tol = options_.frame_tolerance;
  if (n <= 0) return;
  by_bin_.clear();
  for (const QueryPeak& q : held_)
    if (q.frame >= first - tol - 1 && q.frame <= last + longest_ + tol + 1) by_bin_.push_back(q);
  std::sort(by_bin_.begin(), by_bin_.end(),
            [](const QueryPeak& a, const QueryPeak& b) { return a.bin < b.bin; });
  hist_.resize(n);
  stamp_.resize(n);
  std::vector<LogoPeakDetection> block;
  for (size_t li = 0; li < logos_.size(); ++li) {
    const auto& peaks = logos_[li]->peaks();
    std::fill(hist_.begin(), hist_.end(), 0);
    std::fill(stamp_.begin(), stamp_.end(), -1);
    for (size_t pi = 0; pi < peaks.size(); ++pi) {
      const LogoPeak& lp = peaks[pi];
      auto it = std::lower_bound(by_bin_.begin(), by_bin_.end(), lp.bin - options_.bin_tolerance,
                                 [](const QueryPeak& q, float b) { return q.bin < b; });
      for (; it != by_bin_.end() && it->bin <= lp.bin + options_.bin_tolerance; ++it) {
        const int offset = int(std::lround(it->frame - lp.frame));
        // A peak one frame off still counts (peaks of a mix shift a little); each logo peak
        // votes once per offset however many query peaks it finds there.
        for (int d = -tol; d <= tol; ++d) {
          const int i = offset + d - first;
          if (i < 0 || i >= n || stamp_[i] == int(pi)) continue;
          stamp_[i] = int(pi);
          ++hist_[i];
        }
      }
    }
    // Offsets that would put the whole logo before the query cannot take a vote: they would
    // only dilute the chance level.
    const int span = frames_of(*logos_[li]);
    const int valid = std::clamp(-span + 1 - first, 0, n);
    for (int i = 0; i < valid; ++i) hist_[i] = -1;
    if (valid >= n) continue;
    int best = valid;
    for (int i = valid + 1; i < n; ++i)
      if (hist_[i] > hist_[best]) best = i;
    if (hist_[best] <= 0) continue;
    double chance = 0;
    int counted = 0;
    for (int i = valid; i < n; ++i)
      if (std::abs(i - best) > kPeakHalfWidth) {
        chance += hist_[i];
        ++counted;
      }
    const double lambda = std::max(kMinChanceVotes, counted ? chance / counted : 0.0);
    const double trials = std::log10(double(n - valid));
    for (int k = 0; k < kMaxDetectionsPerBlock; ++k) {
      int at = -1;
      for (int i = 0; i < n; ++i)
        if (hist_[i] >= 0 && (at < 0 || hist_[i] > hist_[at])) at = i;
      if (at < 0) break;
      const double score = poisson_surprise(hist_[at], lambda) - trials;
      if (score < options_.min_score) break;
      block.push_back({logo_index_[li], first + at, span, hist_[at], score});
      for (int i = std::max(0, at - span); i < std::min(n, at + span + 1); ++i) hist_[i] = -1;
    }
  }
  std::sort(block.begin(), block.end(), [](const LogoPeakDetection& a, const LogoPeakDetection& b) {
    return a.frame < b.frame;
  });
  for (const LogoPeakDetection& d : block) record(d);
}

void LogoPeakMatcher::record(const LogoPeakDetection& d) {
  // The same occurrence seen from two blocks (a block edge, the re-read tail): keep the better.
  for (LogoPeakDetection& f : found_) {
    if (f.logo != d.logo) continue;
    if (std::abs(f.frame - d.frame) <= kPeakHalfWidth) {
      if (d.score > f.score) f = d;
      return;
    }
  }
  found_.push_back(d);
}

std::vector<LogoPeakDetection> LogoPeakMatcher::detections() const {
  std::vector<LogoPeakDetection> out = found_;
  std::stable_sort(
      out.begin(), out.end(),
      [](const LogoPeakDetection& a, const LogoPeakDetection& b) { return a.frame < b.frame; });
  return out;
}

}  // namespace earmark
