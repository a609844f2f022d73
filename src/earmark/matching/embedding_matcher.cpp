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
  out.assign(windows, -2.0f);
  if (ref_windows == 0) return;
  auto dot = [dim](const float* x, const float* y) {
    float d = 0;
    for (int k = 0; k < dim; ++k) d += x[k] * y[k];
    return d;
  };
  for (size_t j = 0; j < windows; ++j) {
    const double at =
        (pivot + offset + (double(j) * query_hop_s - pivot) * speed) / reference_hop_s_;
    if (at < -0.5 || at > double(ref_windows) - 0.5) continue;
    const float* q = query + j * size_t(dim);
    // Between two reference windows, compare with their interpolation (embeddings move smoothly
    // with time): the similarity then peaks at the true offset instead of staying flat across
    // the reference hop.
    const double lo = std::floor(at), a = at - lo;
    if (lo < 0 || lo + 1 >= double(ref_windows)) {
      out[j] = dot(
          q, vectors_.vector(ref, size_t(std::clamp(std::lround(at), 0L, long(ref_windows) - 1))));
      continue;
    }
    const float* r0 = vectors_.vector(ref, size_t(lo));
    const float* r1 = vectors_.vector(ref, size_t(lo) + 1);
    const double norm = std::sqrt(
        std::max(1e-12, (1 - a) * (1 - a) + a * a + 2 * a * (1 - a) * double(dot(r0, r1))));
    out[j] = float(((1 - a) * dot(q, r0) + a * dot(q, r1)) / norm);
  }
}

EmbeddingMatcher::Segment EmbeddingMatcher::best_segment(
    const std::vector<float>& sims, const std::vector<float>& background) const {
  // Maximum-sum run of (similarity - floor) over consecutive aligned windows (Kadane).
  Segment best;
  double run = 0;
  size_t start = 0;
  bool open = false;
  for (size_t j = 0; j < sims.size(); ++j) {
    if (sims[j] < -1.5f) {
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
      sum += sims[j];
      margin += sims[j] - background[j];
    }
    best.mean = sum / double(best.last - best.first + 1);
    best.margin = margin / double(best.last - best.first + 1);
  }
  return best;
}

EmbeddingMatch EmbeddingMatcher::score_at(const float* query, size_t windows, double query_hop_s,
                                          double window_s, uint32_t reference, double offset_s,
                                          double speed,
                                          const std::vector<float>& background) const {
  const double pivot = pivot_of(windows, query_hop_s);
  return score_over(query, windows, query_hop_s, window_s, reference,
                    offset_s + pivot * speed - pivot, background, speed_steps());
}

int EmbeddingMatcher::speed_steps() const {
  return options_.max_speed_change > 0
             ? int(std::floor(options_.max_speed_change / options_.speed_step + 1e-9))
             : 0;
}

EmbeddingMatch EmbeddingMatcher::score_over(const float* query, size_t windows, double query_hop_s,
                                            double window_s, uint32_t reference,
                                            double pivot_offset_s,
                                            const std::vector<float>& background,
                                            int speeds) const {
  EmbeddingMatch best;
  if (background.size() != windows) return best;  // not this query's backgrounds
  double best_gain = -1e300;
  std::vector<float> sims_at;
  const double pivot = pivot_of(windows, query_hop_s);
  const int64_t centre = std::llround(pivot_offset_s / query_hop_s);
  for (int v = -speeds; v <= speeds; ++v) {
    const double speed = 1.0 + v * options_.speed_step;
    for (int64_t d = -2; d <= 2; ++d) {
      const double offset = double(centre + d) * query_hop_s;
      aligned_similarities(query, windows, query_hop_s, reference, pivot, offset, speed, sims_at);
      const Segment seg = best_segment(sims_at, background);
      if (seg.mean < -1.5 || seg.gain <= best_gain) continue;
      best_gain = seg.gain;
      best.reference = reference;
      best.query_start = double(seg.first) * query_hop_s;
      best.query_end = double(seg.last) * query_hop_s + window_s;
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
                                                    std::vector<float>* background_out) const {
  std::vector<EmbeddingMatch> out;
  if (windows == 0 || index_.size() == 0) return out;
  const int k = options_.neighbours;
  std::vector<float> sims(windows * size_t(k));
  std::vector<int64_t> ids(windows * size_t(k));
  index_.search(query, windows, k, sims.data(), ids.data());

  std::vector<float> background(windows);
  for (size_t j = 0; j < windows; ++j)
    background[j] = std::max(float(options_.background_floor), sims[j * k + k - 1]);

  // Votes on (reference, offset), offsets in query hops.
  std::map<std::pair<uint32_t, int64_t>, double> votes;
  for (size_t j = 0; j < windows; ++j) {
    for (int n = 0; n < k; ++n) {
      const int64_t id = ids[j * k + n];
      const float s = sims[j * k + n];
      if (id < 0 || s < options_.vote_floor) continue;
      // A graph index keeps a removed reference's windows until compaction; it has none here.
      if (vectors_.windows(reference_of(id)) == 0) continue;
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
                                  double(key.second) * query_hop_s, background, 0);
    if (m.windows > 0) scored.push_back(m);
  }
  std::sort(scored.begin(), scored.end(), by_evidence);
  const int speeds = speed_steps();
  if (speeds > 0) {
    const double pivot = pivot_of(windows, query_hop_s);
    for (size_t i = 0; i < scored.size() && i < size_t(options_.speed_candidates); ++i)
      scored[i] = score_over(query, windows, query_hop_s, window_s, scored[i].reference,
                             scored[i].reference_time(pivot) - pivot, background, speeds);
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
  if (background_out) *background_out = std::move(background);
  return out;
}

}  // namespace earmark
