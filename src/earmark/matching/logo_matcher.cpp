#include "earmark/matching/logo_matcher.h"

#include <algorithm>
#include <cmath>

#include "earmark/common/error.h"

namespace earmark {

namespace {

// Neighbouring cells of a spectrogram are far from independent (a partial lasts many steps and
// spreads over adjacent bands); measured on the development split's logo negatives, about this
// many template cells make one degree of freedom of the correlation. (Scaling by each template's
// own autocorrelation length instead was tried: it penalised the sustained notes of real logos
// more than it removed chance matches.)
constexpr double kCellsPerDegree = 15.0;
// Offsets this close to a block's best are part of its peak, not of the chance level.
constexpr int kPeakHalfWidth = 12;
// With fewer offsets than this left for the chance level, assume an uncorrelated background.
constexpr int kMinChanceOffsets = 50;
constexpr int kMaxDetectionsPerBlock = 8;

}  // namespace

LogoMatcher::LogoMatcher(std::vector<const LogoTemplate*> logos, int num_bands,
                         LogoMatchOptions options)
    : logos_(std::move(logos)), num_bands_(num_bands), options_(options) {
  if (options_.block_steps < 1) throw Error("logo matcher: block_steps must be positive");
  for (const LogoTemplate* t : logos_) {
    if (t->num_bands() != num_bands_)
      throw Error("logo template with " + std::to_string(t->num_bands()) +
                  " bands cannot match a query analysed into " + std::to_string(num_bands_));
    longest_ = std::max(longest_, t->steps());
  }
  columns_.resize(num_bands_);
  prefix_.resize(num_bands_);
  prefix_sq_.resize(num_bands_);
  last_found_.assign(logos_.size(), -1);
  // Cells come sorted by band, then step.
  for (const LogoTemplate* t : logos_) {
    std::vector<SupportRun> runs;
    for (const LogoCell& c : t->cells()) {
      if (!runs.empty() && runs.back().band == c.band && runs.back().end == c.step)
        ++runs.back().end;
      else
        runs.push_back({c.band, c.step, c.step + 1});
    }
    runs_.push_back(std::move(runs));
    degrees_.push_back(double(t->cells().size()) / kCellsPerDegree);
  }
}

void LogoMatcher::push_step(const float* contrast) {
  for (int b = 0; b < num_bands_; ++b) columns_[b].push_back(contrast[b]);
  ++steps_;
  const int block = options_.block_steps;
  if (!logos_.empty() && steps_ - base_ >= block + longest_ - 1) {
    evaluate(base_, base_ + block);
    for (auto& c : columns_) c.erase(c.begin(), c.begin() + block);
    base_ += block;
  }
}

void LogoMatcher::finish() {
  if (!logos_.empty() && steps_ > base_) evaluate(base_, steps_);
  for (auto& c : columns_) c.clear();
  base_ = steps_;
}

void LogoMatcher::evaluate(int first, int last) {
  const size_t held = size_t(steps_ - base_);
  for (int b = 0; b < num_bands_; ++b) {
    prefix_[b].resize(held + 1);
    prefix_sq_[b].resize(held + 1);
    prefix_[b][0] = prefix_sq_[b][0] = 0;
    const float* y = columns_[b].data();
    for (size_t i = 0; i < held; ++i) {
      prefix_[b][i + 1] = prefix_[b][i] + y[i];
      prefix_sq_[b][i + 1] = prefix_sq_[b][i] + double(y[i]) * y[i];
    }
  }
  const size_t widest = size_t(std::max(0, last - first));
  if (sxy_.size() < widest) {
    sxy_.resize(widest);
    sy_.resize(widest);
    syy_.resize(widest);
  }
  std::vector<LogoDetection> block;
  for (size_t li = 0; li < logos_.size(); ++li) {
    const LogoTemplate& t = *logos_[li];
    const int end = std::min(last, steps_ - t.steps() + 1);
    const int n = end - first;
    if (n <= 0) continue;
    std::fill_n(sxy_.begin(), n, 0.0f);
    std::fill_n(sy_.begin(), n, 0.0f);
    std::fill_n(syy_.begin(), n, 0.0f);
    // The innermost loops are where the time goes; __restrict lets the compiler vectorise them.
    float* __restrict sxy = sxy_.data();
    for (const LogoCell& c : t.cells()) {
      const float* __restrict y = columns_[c.band].data() + (first - base_) + c.step;
      const float x = c.value;
      for (int i = 0; i < n; ++i) sxy[i] += x * y[i];
    }
    // The query's sums over the template's support come from prefix sums along each band, one
    // difference per run of consecutive support steps rather than one term per cell.
    float* __restrict sy = sy_.data();
    float* __restrict syy = syy_.data();
    for (const SupportRun& r : runs_[li]) {
      const size_t at = size_t(first - base_);
      const double* __restrict p1 = prefix_[r.band].data() + at;
      const double* __restrict p2 = prefix_sq_[r.band].data() + at;
      for (int i = 0; i < n; ++i) {
        sy[i] += float(p1[i + r.end] - p1[i + r.begin]);
        syy[i] += float(p2[i + r.end] - p2[i + r.begin]);
      }
    }
    // The template's values are centred, so the covariance needs no mean of the query's.
    const double cells = double(t.cells().size());
    corr_.assign(n, 0.0);
    int best = 0;
    for (int i = 0; i < n; ++i) {
      const double var = double(syy_[i]) - double(sy_[i]) * sy_[i] / cells;
      if (var > 1e-9) corr_[i] = sxy_[i] / std::sqrt(t.energy() * var);
      if (corr_[i] > corr_[best]) best = i;
    }
    double chance = 0;
    int counted = 0;
    for (int i = 0; i < n; ++i)
      if (std::abs(i - best) > kPeakHalfWidth) {
        chance += corr_[i];
        ++counted;
      }
    chance = counted >= kMinChanceOffsets ? std::clamp(chance / counted, -0.5, 0.9) : 0.0;
    const double scale = std::sqrt(degrees_[li]);
    std::vector<char> taken(n, 0);
    for (int k = 0; k < kMaxDetectionsPerBlock; ++k) {
      int at = -1;
      for (int i = 0; i < n; ++i)
        if (!taken[i] && (at < 0 || corr_[i] > corr_[at])) at = i;
      if (at < 0) break;
      const double r = std::min(corr_[at], 0.999);
      const double score = (std::atanh(r) - std::atanh(chance)) * scale;
      if (score < options_.min_score) break;
      block.push_back({li, first + at, t.steps(), corr_[at], score});
      for (int i = std::max(0, at - t.steps()); i < std::min(n, at + t.steps() + 1); ++i)
        taken[i] = 1;
    }
  }
  std::sort(block.begin(), block.end(),
            [](const LogoDetection& a, const LogoDetection& b) { return a.step < b.step; });
  for (const LogoDetection& d : block) record(d);
}

void LogoMatcher::record(const LogoDetection& d) {
  int& last = last_found_[d.logo];
  if (last >= 0 && found_[last].step + found_[last].steps > d.step) {
    // The same occurrence seen from both sides of a block edge: keep the better view.
    if (d.score > found_[last].score) found_[last] = d;
    return;
  }
  last = int(found_.size());
  found_.push_back(d);
}

std::vector<LogoDetection> LogoMatcher::detections() const {
  std::vector<LogoDetection> out = found_;
  std::stable_sort(out.begin(), out.end(),
                   [](const LogoDetection& a, const LogoDetection& b) { return a.step < b.step; });
  return out;
}

}  // namespace earmark
