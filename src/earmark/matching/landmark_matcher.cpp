#include "earmark/matching/landmark_matcher.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

namespace earmark {

namespace {

constexpr int kCoarseBin = 64;         // frames: offset histogram bin of the candidate stage
constexpr int kFineBin = 4;            // frames: the fine histogram's bin (kCoarseBin / 16)
constexpr size_t kLookupBatch = 8192;  // keys per batched index search
constexpr double kSpeedStep = 0.01;
constexpr double kMergeTolerance = 15.0;    // frames between the lines of two merged detections
constexpr size_t kMinDistinctFrames = 4;    // query anchor frames among a match's inliers
constexpr int32_t kMinSpanFrames = 10;      // and the query time they span
constexpr int kShortReferenceFrames = 500;  // 5 s
// Further triplets of one anchor pair share two of their three peaks with the first: they are
// weaker evidence than a new anchor pair. And in music they are not independent: pitch-invariant
// hashes let any harmonic stack match any other, so one chance coincidence of two chords brings
// many triplets along. Repeats count up to kMaxRepeatsPerAnchor times the number of anchor pairs
// (in all, not pair by pair), except for short references: a sound logo may be a single attack
// whose every triplet sits on a few anchors.
constexpr double kRepeatWeight = 0.25;
constexpr double kMaxRepeatsPerAnchor = 2.0;

uint64_t pack_pair(int32_t tq, uint32_t g) { return (uint64_t(uint32_t(tq)) << 32) | g; }
int32_t pair_tq(uint64_t p) { return int32_t(uint32_t(p >> 32)); }

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Stable LSD radix sort of `keys` on their bits from `shift` up (values up to `max_high` there).
// Keys that arrive in order of their low bits come out exactly as a full sort would leave them,
// in a few linear passes instead of n log n comparisons.
void sort_on_high_bits(std::vector<uint64_t>& keys, int shift, uint64_t max_high,
                       std::vector<uint64_t>& scratch) {
  constexpr int kDigitBits = 11;
  constexpr size_t kDigits = size_t(1) << kDigitBits;
  scratch.resize(keys.size());
  for (int s = 0; s < 64 - shift && (max_high >> s) != 0; s += kDigitBits) {
    size_t start[kDigits] = {};
    for (uint64_t k : keys) ++start[(k >> (shift + s)) & (kDigits - 1)];
    size_t sum = 0;
    for (size_t& c : start) sum += std::exchange(c, sum);
    for (uint64_t k : keys) scratch[start[(k >> (shift + s)) & (kDigits - 1)]++] = k;
    keys.swap(scratch);
  }
}

}  // namespace

LandmarkMatcher::LandmarkMatcher(const LandmarkParams& params, const LandmarkIndex& index,
                                 const ReferenceTimeline& timeline, const MatchOptions& options)
    : params_(params), index_(index), timeline_(timeline), options_(options), quantizer_(params) {}

void LandmarkMatcher::add(const TripletDescriptor& d) {
  while (d.frame >= window_start_ + options_.window_frames) {
    flush_lookups();
    analyse_window(window_start_, window_start_ + options_.window_frames);
    window_start_ += options_.window_frames / 2;
    auto keep = std::lower_bound(hits_.begin(), hits_.end(), window_start_,
                                 [](const Hit& h, int32_t t) { return h.tq < t; });
    hits_.erase(hits_.begin(), keep);
  }
  size_t before = pending_keys_.size();
  quantizer_.probe_keys(d, pending_keys_);
  uint8_t code = TripletQuantizer::pitch_code(d.pitch);
  pending_frames_.resize(pending_keys_.size(), d.frame);
  pending_pitch_.resize(pending_keys_.size(), code);
  lookups_ += pending_keys_.size() - before;
  if (pending_keys_.size() >= kLookupBatch) flush_lookups();
}

void LandmarkMatcher::flush_lookups() {
  if (pending_keys_.empty()) return;
  search_buffer_.clear();
  index_.search(pending_keys_.size(), pending_keys_.data(), search_buffer_);
  total_hits_ += search_buffer_.size();
  const float max_shift = params_.max_pitch_shift + options_.pitch_tolerance;
  const size_t old = hits_.size();
  for (const SearchHit& h : search_buffer_) {
    float dp = TripletQuantizer::pitch_shift(pending_pitch_[h.query], h.pitch_code);
    if (std::fabs(dp) > max_shift) continue;
    hits_.push_back({pending_frames_[h.query], h.frame, dp});
  }
  // Batches arrive in query order but a segment set returns them segment by segment.
  std::sort(hits_.begin() + old, hits_.end(),
            [](const Hit& a, const Hit& b) { return a.tq < b.tq; });
  std::inplace_merge(hits_.begin(), hits_.begin() + old, hits_.end(),
                     [](const Hit& a, const Hit& b) { return a.tq < b.tq; });
  pending_keys_.clear();
  pending_frames_.clear();
  pending_pitch_.clear();
}

void LandmarkMatcher::finish() {
  if (finished_) return;
  finished_ = true;
  flush_lookups();
  if (!hits_.empty()) analyse_window(window_start_, hits_.back().tq + 1);
}

void LandmarkMatcher::analyse_window(int32_t start, int32_t end) {
  auto lo = std::lower_bound(hits_.begin(), hits_.end(), start,
                             [](const Hit& h, int32_t t) { return h.tq < t; });
  auto hi =
      std::lower_bound(lo, hits_.end(), end, [](const Hit& h, int32_t t) { return h.tq < t; });
  if (hi == lo || hi - lo < options_.min_inliers) return;

  // Candidate stage: histogram of g - tq in coarse bins; tempo drift over a window is a few
  // bins at most, so a candidate gathers its bin and two neighbours on each side.
  // (bin, hit) packed in one integer, bin above the hit's index in the window. With the index in
  // the low bits, a stable radix sort on the bin alone gives the full sort the lower_bounds below
  // need, at a fraction of the cost of a comparison sort (this sort is a hot spot of a query).
  constexpr int kIndexBits = 24;
  if (hi - lo >= (int64_t(1) << kIndexBits)) hi = lo + ((int64_t(1) << kIndexBits) - 1);
  int64_t min_bin = INT64_MAX, max_bin = INT64_MIN;
  for (auto it = lo; it != hi; ++it) {
    const int64_t bin = floor_div(int64_t(it->g) - it->tq, kCoarseBin);
    min_bin = std::min(min_bin, bin);
    max_bin = std::max(max_bin, bin);
  }
  // Between the bin and the index: the fine bin within the coarse one, for the fine candidates
  // (the sort leaves it alone, so keys stay in hit order within a bin).
  constexpr int kFineBits = 4;
  static_assert(kCoarseBin / kFineBin == 1 << kFineBits, "fine bins must tile a coarse bin");
  constexpr int kLowBits = kIndexBits + kFineBits;
  auto pack = [&](int64_t bin, uint64_t fine, uint64_t index) {
    return (uint64_t(bin - min_bin + 2) << kLowBits) | (fine << kIndexBits) | index;
  };
  auto bin_of = [&](uint64_t key) { return int64_t(key >> kLowBits) + min_bin - 2; };
  auto fine_of = [](uint64_t key) { return int((key >> kIndexBits) & ((1 << kFineBits) - 1)); };
  auto hit_of = [&](uint64_t key) { return lo[key & ((uint64_t(1) << kIndexBits) - 1)]; };
  std::vector<uint64_t> coarse;
  coarse.reserve(hi - lo);
  for (auto it = lo; it != hi; ++it) {
    const int64_t offset = int64_t(it->g) - it->tq, bin = floor_div(offset, kCoarseBin);
    coarse.push_back(
        pack(bin, uint64_t((offset - bin * kCoarseBin) / kFineBin), uint64_t(it - lo)));
  }
  sort_on_high_bits(coarse, kLowBits, uint64_t(max_bin - min_bin + 2), sort_scratch_);
  std::vector<std::pair<int64_t, int>> runs;  // (bin, count)
  for (size_t i = 0; i < coarse.size();) {
    size_t j = i;
    const int64_t bin = bin_of(coarse[i]);
    while (j < coarse.size() && bin_of(coarse[j]) == bin) ++j;
    runs.push_back({bin, int(j - i)});
    i = j;
  }
  auto count_at = [&](size_t r, int64_t bin) {
    return (r < runs.size() && runs[r].first == bin) ? runs[r].second : 0;
  };
  std::vector<std::pair<int, int64_t>> candidates;  // (smoothed count, bin)
  for (size_t r = 0; r < runs.size(); ++r) {
    int64_t b = runs[r].first;
    int c = runs[r].second;
    int left = r > 0 ? count_at(r - 1, b - 1) : 0;
    int right = count_at(r + 1, b + 1);
    int smooth = left + c + right;
    if (smooth < options_.min_inliers) continue;
    // Local maximum of the smoothed histogram (ties resolved towards the lower bin).
    int left_smooth = r > 0 && runs[r - 1].first == b - 1
                          ? runs[r - 1].second + c + (r > 1 ? count_at(r - 2, b - 2) : 0)
                          : -1;
    int right_smooth = (r + 1 < runs.size() && runs[r + 1].first == b + 1)
                           ? runs[r + 1].second + c + count_at(r + 2, b + 2)
                           : -1;
    if (left_smooth >= smooth || right_smooth > smooth) continue;
    candidates.push_back({smooth, b});
  }
  std::sort(candidates.begin(), candidates.end(), std::greater<>());
  if (int(candidates.size()) > options_.max_candidates) candidates.resize(options_.max_candidates);

  const double centre = 0.5 * (start + std::min<int32_t>(end, hits_.back().tq + 1));
  std::vector<Hit> cand;
  std::vector<Segment> found;
  auto try_candidate = [&](int64_t bin) {
    // Keys are in bin order (not fully sorted): partitioned for these bounds.
    auto first = std::lower_bound(coarse.begin(), coarse.end(), pack(bin - 2, 0, 0));
    auto last = std::lower_bound(coarse.begin(), coarse.end(), pack(bin + 3, 0, 0));
    cand.clear();
    for (auto it = first; it != last; ++it) cand.push_back(hit_of(*it));
    Segment seg;
    if (!confirm(cand, centre, seg)) return false;
    for (const Segment& f : found) {
      double mid = 0.5 * (seg.q_first + seg.q_last);
      if (f.ref == seg.ref &&
          std::fabs(f.speed * mid + f.offset - (seg.speed * mid + seg.offset)) < kMergeTolerance)
        return false;
    }
    found.push_back(std::move(seg));
    return true;
  };
  int accepted = 0;
  for (size_t i = 0; i < candidates.size() && accepted < options_.max_matches_per_window; ++i)
    accepted += try_candidate(candidates[i].second);

  // Fine candidates: a coarse bin three bins wide also gathers every chance hit of its 192
  // frames, and in dense music those outnumber a true alignment that noise has thinned to a
  // dozen or two landmarks; the strongest coarse bins then confirm chance alignments of their own
  // and use up the window's matches before it is looked at. At the original speed such an
  // alignment is a spike a few frames wide, plain in a histogram of fine bins. The strongest
  // spikes off the matches found are tried too, on a budget of their own.
  if (options_.fine_candidates > 0) {
    constexpr int kFinePerCoarse = kCoarseBin / kFineBin;
    // Counts of two neighbouring fine bins, for every non-empty first one, gathered a coarse bin
    // at a time (a dense window holds hundreds of thousands of non-empty fine bins; only the
    // spikes are kept).
    std::vector<std::pair<int, int64_t>> spikes;  // (count over two fine bins, g - tq)
    auto spike = [&](int64_t fine_bin, int count) {
      if (count >= options_.min_inliers) spikes.push_back({count, (fine_bin + 1) * kFineBin});
    };
    size_t next = 0;
    int64_t last_bin = INT64_MIN;
    int last_count = 0;  // the previous coarse bin's last fine bin, whose pair is in this one
    for (const auto& [bin, count] : runs) {
      int local[kFinePerCoarse] = {};
      for (int n = 0; n < count; ++n, ++next) ++local[fine_of(coarse[next])];
      if (last_count > 0)
        spike(last_bin * kFinePerCoarse + kFinePerCoarse - 1,
              last_count + (last_bin == bin - 1 ? local[0] : 0));
      for (int f = 0; f + 1 < kFinePerCoarse; ++f)
        if (local[f]) spike(bin * kFinePerCoarse + f, local[f] + local[f + 1]);
      last_bin = bin;
      last_count = local[kFinePerCoarse - 1];
    }
    if (last_count > 0) spike(last_bin * kFinePerCoarse + kFinePerCoarse - 1, last_count);
    std::sort(spikes.begin(), spikes.end(), std::greater<>());
    int budget = options_.fine_candidates;
    std::vector<int64_t> tried;  // coarse bins: neighbouring spikes share their hits
    for (const auto& [count, offset] : spikes) {
      if (budget == 0) break;
      // A spike on the line of a match already found is that match.
      bool known = false;
      for (const Segment& f : found)
        known |= std::fabs(f.speed * centre + f.offset - centre - double(offset)) < kMergeTolerance;
      const int64_t bin = floor_div(offset, kCoarseBin);
      known |= std::find(tried.begin(), tried.end(), bin) != tried.end();
      if (known) continue;
      tried.push_back(bin);
      try_candidate(bin);
      --budget;
    }
  }
  for (Segment& s : found) merge(std::move(s));
}

bool LandmarkMatcher::confirm(std::vector<Hit>& cand, double centre, Segment& out) const {
  if (int(cand.size()) < options_.min_inliers) return false;
  const double tol = options_.inlier_tolerance;
  const int steps = int(std::floor(params_.max_tempo_change / kSpeedStep + 1e-9));
  double best_speed = 1.0, best_offset = 0.0;
  int best_count = 0;
  std::vector<double> offsets(cand.size());
  for (int k = -steps; k <= steps; ++k) {
    double speed = 1.0 + k * kSpeedStep;
    for (size_t i = 0; i < cand.size(); ++i)
      offsets[i] = double(cand[i].g) - speed * (cand[i].tq - centre);
    std::sort(offsets.begin(), offsets.end());
    // Densest stretch of width 2*tol: the offset most hits agree on at this speed.
    size_t j = 0;
    for (size_t i = 0; i < offsets.size(); ++i) {
      while (offsets[i] - offsets[j] > 2 * tol) ++j;
      int c = int(i - j + 1);
      // Prefer the speed nearest 1 on ties: k runs outward from 0 is not guaranteed, so compare.
      if (c > best_count ||
          (c == best_count && std::fabs(speed - 1.0) < std::fabs(best_speed - 1.0))) {
        best_count = c;
        best_speed = speed;
        best_offset = 0.5 * (offsets[i] + offsets[j]);
      }
    }
  }
  if (best_count < options_.min_inliers) return false;

  auto collect = [&](double speed, double offset, std::vector<const Hit*>& in) {
    in.clear();
    for (const Hit& h : cand)
      if (std::fabs(double(h.g) - (speed * (h.tq - centre) + offset)) <= tol) in.push_back(&h);
  };
  std::vector<const Hit*> in;
  collect(best_speed, best_offset, in);
  // Least-squares line through the inliers, when they span enough query time to fix a slope.
  if (in.size() >= 8) {
    double mx = 0, my = 0;
    for (const Hit* h : in) mx += h->tq - centre, my += h->g;
    mx /= in.size();
    my /= in.size();
    double sxx = 0, sxy = 0;
    for (const Hit* h : in) {
      double dx = h->tq - centre - mx;
      sxx += dx * dx;
      sxy += dx * (h->g - my);
    }
    if (sxx > 50.0 * 50.0 * in.size() / 4) {
      double slope = std::clamp(sxy / sxx, 1.0 - params_.max_tempo_change - kSpeedStep,
                                1.0 + params_.max_tempo_change + kSpeedStep);
      double offset = my - slope * mx;
      std::vector<const Hit*> refit;
      collect(slope, offset, refit);
      if (refit.size() >= in.size()) {
        best_speed = slope;
        best_offset = offset;
        in.swap(refit);
      }
    }
  }
  // Pitch: the shift most inliers agree on; hits far from it are coincidences.
  std::vector<float> shifts;
  for (const Hit* h : in) shifts.push_back(h->dpitch);
  std::nth_element(shifts.begin(), shifts.begin() + shifts.size() / 2, shifts.end());
  const float pitch = shifts[shifts.size() / 2];
  // The reference is the one under the median inlier; inliers elsewhere are dropped.
  std::vector<uint32_t> gs;
  for (const Hit* h : in) gs.push_back(h->g);
  std::nth_element(gs.begin(), gs.begin() + gs.size() / 2, gs.end());
  const ReferenceTimeline::Span* span = timeline_.find(gs[gs.size() / 2]);
  if (!span) return false;

  std::vector<uint64_t> pairs;
  for (const Hit* h : in) {
    if (std::fabs(h->dpitch - pitch) > options_.pitch_tolerance) continue;
    if (std::fabs(h->dpitch) > params_.max_pitch_shift + 0.25f) continue;
    if (h->g < span->base || h->g >= span->base + span->count) continue;
    pairs.push_back(pack_pair(h->tq, h->g));
  }
  // A match needs evidence spread over time: many triplets of one or two query instants are a
  // coincidence of one chord, not an alignment. Not so for a short sound (a logo, a
  // notification): it may be a single attack whose evidence all sits within a few frames.
  if (span->count >= uint32_t(kShortReferenceFrames)) {
    std::vector<int32_t> frames;
    for (uint64_t p : pairs) frames.push_back(pair_tq(p));
    std::sort(frames.begin(), frames.end());
    frames.erase(std::unique(frames.begin(), frames.end()), frames.end());
    if (frames.size() < kMinDistinctFrames || frames.back() - frames.front() < kMinSpanFrames)
      return false;
  }
  // Every inlier hit counts: several triplets of one anchor agreeing is evidence too (random
  // coincidences rarely repeat on one anchor pair). Repeats stay, as a sorted multiset, so the
  // union with an overlapping window counts each hit once.
  std::sort(pairs.begin(), pairs.end());
  if (int(pairs.size()) < options_.min_inliers) return false;

  out.ref = span->ref;
  out.base = span->base;
  out.speed = best_speed;
  out.offset = best_offset - best_speed * centre;
  out.pitch = pitch;
  out.background = int(cand.size() - pairs.size());
  out.short_reference = span->count < uint32_t(kShortReferenceFrames);
  out.q_first = pair_tq(pairs.front());
  out.q_last = out.q_first;
  out.inliers.clear();
  for (uint64_t p : pairs) {
    out.q_first = std::min(out.q_first, pair_tq(p));
    out.q_last = std::max(out.q_last, pair_tq(p));
  }
  // Keep the full (tq, g) pairs for unions across windows.
  for (uint64_t p : pairs) {
    out.inliers.push_back(pair_tq(p));
    out.inliers.push_back(int32_t(uint32_t(p)));
  }
  return true;
}

void LandmarkMatcher::merge(Segment&& seg) {
  for (Segment& s : segments_) {
    if (s.ref != seg.ref) continue;
    int32_t gap_lo = std::max(s.q_first, seg.q_first), gap_hi = std::min(s.q_last, seg.q_last);
    if (gap_lo - gap_hi > options_.window_frames) continue;  // too far apart in the query
    double mid = 0.5 * (gap_lo + gap_hi);
    if (std::fabs(s.speed * mid + s.offset - (seg.speed * mid + seg.offset)) > kMergeTolerance)
      continue;
    // Union of the (tq, g) inlier pairs: windows overlap, so most are shared.
    std::vector<uint64_t> a, b, u;
    for (size_t i = 0; i + 1 < s.inliers.size(); i += 2)
      a.push_back(pack_pair(s.inliers[i], uint32_t(s.inliers[i + 1])));
    for (size_t i = 0; i + 1 < seg.inliers.size(); i += 2)
      b.push_back(pack_pair(seg.inliers[i], uint32_t(seg.inliers[i + 1])));
    std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(u));
    double wa = double(a.size()), wb = double(b.size());
    s.speed = (s.speed * wa + seg.speed * wb) / (wa + wb);
    s.offset = (s.offset * wa + seg.offset * wb) / (wa + wb);
    s.pitch = (s.pitch * wa + seg.pitch * wb) / (wa + wb);
    s.background = std::max(s.background, seg.background);
    s.q_first = std::min(s.q_first, seg.q_first);
    s.q_last = std::max(s.q_last, seg.q_last);
    s.inliers.clear();
    for (uint64_t p : u) {
      s.inliers.push_back(pair_tq(p));
      s.inliers.push_back(int32_t(uint32_t(p)));
    }
    return;
  }
  segments_.push_back(std::move(seg));
}

std::vector<LandmarkMatch> LandmarkMatcher::matches() const {
  std::vector<LandmarkMatch> out;
  for (const Segment& s : segments_) {
    LandmarkMatch m;
    m.ref = s.ref;
    m.landmarks = int(s.inliers.size() / 2);
    m.background = s.background;
    // Inliers are sorted (tq, g) pairs: a new frame or pair starts where it differs from the last.
    for (size_t i = 0; i + 1 < s.inliers.size(); i += 2) {
      const bool new_frame = i == 0 || s.inliers[i] != s.inliers[i - 2];
      m.frames += new_frame;
      m.anchors += new_frame || s.inliers[i + 1] != s.inliers[i - 1];
    }
    double repeats = m.landmarks - m.anchors;
    if (!s.short_reference) repeats = std::min(repeats, kMaxRepeatsPerAnchor * m.anchors);
    m.score = m.anchors + kRepeatWeight * repeats - std::sqrt(double(m.background));
    m.speed = s.speed;
    m.pitch_shift = s.pitch;
    m.query_start = params_.frame_time(s.q_first);
    m.query_end = params_.frame_time(s.q_last);
    double r0 = s.speed * s.q_first + s.offset - double(s.base);
    double r1 = s.speed * s.q_last + s.offset - double(s.base);
    m.ref_start = params_.frame_time(std::max(0.0, r0));
    m.ref_end = params_.frame_time(std::max(0.0, r1));
    out.push_back(m);
  }
  std::sort(out.begin(), out.end(),
            [](const LandmarkMatch& a, const LandmarkMatch& b) { return a.score > b.score; });
  // Music repeats itself: a chorus or a loop also aligns, more weakly, at its other
  // occurrences. Over one stretch of the query, one reference is reported once, at its best
  // alignment.
  std::vector<LandmarkMatch> kept;
  for (const LandmarkMatch& m : out) {
    bool shadowed = false;
    for (const LandmarkMatch& k : kept) {
      if (k.ref != m.ref) continue;
      double overlap = std::min(k.query_end, m.query_end) - std::max(k.query_start, m.query_start);
      double len = std::max(1e-3, m.query_end - m.query_start);
      if (overlap > 0.5 * len) shadowed = true;
    }
    if (!shadowed) kept.push_back(m);
  }
  return kept;
}

}  // namespace earmark
