#include "earmark/matching/embedding_matcher.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "earmark/common/error.h"

namespace earmark {

EmbeddingMatcher::EmbeddingMatcher(const VectorIndex& index, const ReferenceVectors& vectors,
                                   double reference_hop_s, const EmbeddingMatchOptions& options)
    : index_(index), vectors_(vectors), reference_hop_s_(reference_hop_s), options_(options) {
  if (!(reference_hop_s > 0)) throw Error("embedding matcher: the reference hop must be positive");
  if (options.neighbours < 1 || options.neighbours > 4096 || options.candidates < 1 ||
      options.max_matches < 1)
    throw Error("embedding matcher: neighbours, candidates and max_matches must be positive");
  if (!(options.length_bonus >= 0 && options.length_bonus <= 1 && options.runner_up_weight >= 0 &&
        options.runner_up_weight <= 2) ||
      options.speed_candidates < 0)
    throw Error(
        "embedding matcher: the length bonus must be in [0, 1], the runner-up weight in "
        "[0, 2] and the speed candidates not negative");
  if (!(options.max_speed_change >= 0 && options.max_speed_change <= 0.5) ||
      (options.max_speed_change > 0 &&
       !(options.speed_step > 0 && options.max_speed_change / options.speed_step <= 100)))
    throw Error(
        "embedding matcher: the speed change must be 0 to 0.5, in at most 100 positive steps");
}

void EmbeddingMatcher::aligned_similarities(const float* query, size_t windows, double query_hop_s,
                                            uint32_t ref, double pivot, double offset, double speed,
                                            std::vector<float>& out) const {
  const size_t ref_windows = vectors_.windows(ref);
  const int dim = index_.dim();
  out.assign(windows, kOutside);
  if (ref_windows == 0) return;
  // The query hop in reference windows: of the query windows about one reference window, only
  // the nearest is compared with it. The network tells apart windows 0.2 s apart (it is trained
  // for +-0.1 s), so a query window between two reference windows looks like neither, and
  // neither would an interpolation of the two: such windows sit out instead of breaking the
  // aligned run.
  const double step = query_hop_s * speed / reference_hop_s_;
  for (size_t j = 0; j < windows; ++j) {
    const double at =
        (pivot + offset + (double(j) * query_hop_s - pivot) * speed) / reference_hop_s_;
    const double nearest = std::round(at);
    if (nearest < 0 || nearest > double(ref_windows) - 1) continue;
    if (step < 1 && !(at - nearest > -step / 2 && at - nearest <= step / 2)) {
      out[j] = kBetween;
      continue;
    }
    const float* q = query + j * size_t(dim);
    const float* r = vectors_.vector(ref, size_t(nearest));
    float d = 0;
    for (int k = 0; k < dim; ++k) d += q[k] * r[k];
    out[j] = d;
  }
}

EmbeddingMatcher::Segment EmbeddingMatcher::best_segment(const std::vector<float>& sims,
                                                         const std::vector<float>& background,
                                                         int reach) const {
  // Maximum-sum run of (similarity - floor) over the aligned windows compared (Kadane); windows
  // between reference windows neither add to a run nor break it.
  Segment best;
  double run = 0;
  size_t start = 0;
  bool open = false;
  for (size_t j = 0; j < sims.size(); ++j) {
    if (sims[j] == kBetween) continue;
    if (sims[j] == kOutside) {
      open = false;
      continue;
    }
    const double g = sims[j] - background[j] - options_.segment_floor;
    if (!open || run < 0) {
      run = 0;
      start = j;
      open = true;
    }
    run += g;
    if (run > best.gain) {
      best.gain = run;
      best.first = start;
      best.last = j;
    }
  }
  if (best.gain > -1e299) {
    double sum = 0, margin = 0;
    for (size_t j = best.first; j <= best.last; ++j) {
      if (sims[j] == kBetween) continue;
      sum += sims[j];
      margin += sims[j] - background[j];
      ++best.compared;
    }
    best.mean = sum / double(best.compared);
    best.margin = margin / double(best.compared);
    // The segment's first and last reference windows stand for the query windows about them.
    best.span_first = best.first;
    best.span_last = best.last;
    for (int n = 0; n < reach && best.span_first > 0 && sims[best.span_first - 1] == kBetween; ++n)
      --best.span_first;
    for (int n = 0;
         n < reach && best.span_last + 1 < sims.size() && sims[best.span_last + 1] == kBetween; ++n)
      ++best.span_last;
  }
  return best;
}

EmbeddingMatch EmbeddingMatcher::score_at(const float* query, size_t windows, double query_hop_s,
                                          double window_s, uint32_t reference, double offset_s,
                                          double speed, const QueryNeighbours& neighbours) const {
  const double pivot = pivot_of(windows, query_hop_s);
  return score_over(query, windows, query_hop_s, window_s, reference,
                    offset_s + pivot * speed - pivot, neighbours, speed_steps());
}

void EmbeddingMatcher::background_for(uint32_t reference, const QueryNeighbours& neighbours,
                                      std::vector<float>& out) const {
  const int k = neighbours.k;
  out.assign(neighbours.windows(), float(options_.background_floor));
  for (size_t j = 0; j < out.size(); ++j) {
    const float* sims = neighbours.similarities.data() + j * size_t(k);
    const int64_t* ids = neighbours.ids.data() + j * size_t(k);
    float other = sims[k - 1];
    for (int n = 0; n < k; ++n)
      if (live(ids[n]) && reference_of(ids[n]) != reference) {
        other = sims[n];
        break;
      }
    out[j] = std::max(out[j], other);
  }
}

int EmbeddingMatcher::speed_steps() const {
  return options_.max_speed_change > 0
             ? int(std::floor(options_.max_speed_change / options_.speed_step + 1e-9))
             : 0;
}

EmbeddingMatch EmbeddingMatcher::score_over(const float* query, size_t windows, double query_hop_s,
                                            double window_s, uint32_t reference,
                                            double pivot_offset_s,
                                            const QueryNeighbours& neighbours, int speeds) const {
  EmbeddingMatch best;
  if (neighbours.windows() != windows) return best;  // not this query's neighbours
  std::vector<float> background;
  background_for(reference, neighbours, background);
  double best_gain = -1e300;
  std::vector<float> sims_at;
  const double pivot = pivot_of(windows, query_hop_s);
  const int64_t centre = std::llround(pivot_offset_s / query_hop_s);
  for (int v = -speeds; v <= speeds; ++v) {
    const double speed = 1.0 + v * options_.speed_step;
    // Half the query windows between two compared ones.
    const int reach = int(std::floor(0.5 * reference_hop_s_ / (query_hop_s * speed) + 1e-9));
    for (int64_t d = -2; d <= 2; ++d) {
      const double offset = double(centre + d) * query_hop_s;
      aligned_similarities(query, windows, query_hop_s, reference, pivot, offset, speed, sims_at);
      const Segment seg = best_segment(sims_at, background, reach);
      if (seg.mean < -1.5 || seg.gain <= best_gain) continue;
      best_gain = seg.gain;
      best.reference = reference;
      best.query_start = double(seg.span_first) * query_hop_s;
      best.query_end = double(seg.span_last) * query_hop_s + window_s;
      best.offset_s = pivot + offset + (best.query_start - pivot) * speed - best.query_start;
      best.speed = speed;
      best.score = seg.mean;
      best.evidence = seg.gain;
      best.margin = seg.margin;
      best.windows = int(seg.last - seg.first + 1);
    }
  }
  best.strength = best.margin +
                  options_.length_bonus * std::log(std::max(1.0, best.windows * query_hop_s / 0.1));
  best.decision = best.strength;
  return best;
}

std::vector<EmbeddingMatch> EmbeddingMatcher::match(const float* query, size_t windows,
                                                    double query_hop_s, double window_s,
                                                    QueryNeighbours* neighbours_out) const {
  std::vector<EmbeddingMatch> out;
  if (windows == 0 || index_.size() == 0) return out;
  const int k = options_.neighbours;
  QueryNeighbours neighbours;
  neighbours.k = k;
  neighbours.similarities.resize(windows * size_t(k));
  neighbours.ids.resize(windows * size_t(k));
  index_.search(query, windows, k, neighbours.similarities.data(), neighbours.ids.data());
  const std::vector<float>& sims = neighbours.similarities;
  const std::vector<int64_t>& ids = neighbours.ids;

  // Votes on (reference, offset), offsets in query hops.
  std::map<std::pair<uint32_t, int64_t>, double> votes;
  for (size_t j = 0; j < windows; ++j) {
    for (int n = 0; n < k; ++n) {
      const int64_t id = ids[j * k + n];
      const float s = sims[j * k + n];
      if (!live(id) || s < options_.vote_floor) continue;
      const double offset = window_of(id) * reference_hop_s_ - double(j) * query_hop_s;
      votes[{reference_of(id), std::llround(offset / query_hop_s)}] += s - options_.vote_floor;
    }
  }
  std::vector<std::pair<double, std::pair<uint32_t, int64_t>>> ranked;
  for (const auto& [key, v] : votes) ranked.push_back({v, key});
  std::sort(ranked.begin(), ranked.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  if (ranked.size() > size_t(options_.candidates)) ranked.resize(size_t(options_.candidates));

  // Each candidate scored over its best segment, its offset refined to the query hop; the
  // strongest few also over the speeds. A vote's offset holds at every query time, the pivot's
  // included, at speed 1.
  std::vector<EmbeddingMatch> scored;
  auto by_evidence = [](const auto& a, const auto& b) { return a.evidence > b.evidence; };
  for (const auto& [v, key] : ranked) {
    EmbeddingMatch m = score_over(query, windows, query_hop_s, window_s, key.first,
                                  double(key.second) * query_hop_s, neighbours, 0);
    if (m.windows > 0) scored.push_back(m);
  }
  std::sort(scored.begin(), scored.end(), by_evidence);
  const int speeds = speed_steps();
  if (speeds > 0) {
    const double pivot = pivot_of(windows, query_hop_s);
    for (size_t i = 0; i < scored.size() && i < size_t(options_.speed_candidates); ++i)
      scored[i] = score_over(query, windows, query_hop_s, window_s, scored[i].reference,
                             scored[i].reference_time(pivot) - pivot, neighbours, speeds);
    std::sort(scored.begin(), scored.end(), by_evidence);
  }

  // One match per reference and place: lower candidates of the same reference within a few
  // seconds of offset of a kept one are the same occurrence.
  for (const EmbeddingMatch& m : scored) {
    if (m.score < options_.min_score) continue;
    bool same = false;
    for (const EmbeddingMatch& kept : out)
      same |= kept.reference == m.reference &&
              std::abs(kept.reference_time(0) - m.reference_time(0)) < 2.0;
    if (same) continue;
    out.push_back(m);
    if (out.size() >= size_t(options_.max_matches)) break;
  }
  // Each match's lead over the other references.
  for (EmbeddingMatch& m : out) {
    for (const EmbeddingMatch& other : out)
      if (other.reference != m.reference) m.runner_up = std::max(m.runner_up, other.strength);
    m.decision = m.strength - options_.runner_up_weight * m.runner_up;
  }
  if (neighbours_out) *neighbours_out = std::move(neighbours);
  return out;
}

}  // namespace earmark
