#include "earmark/index/model_vectors.h"

#include <cmath>

#include "earmark/common/error.h"

namespace earmark {

ModelVectors::ModelVectors(std::string kind, int dim, const VectorIndexOptions& options)
    : kind_(std::move(kind)), dim_(dim), options_(options) {
  options_.validate(dim);
}

void ModelVectors::add(uint32_t reference_key, std::vector<float> starts,
                       std::vector<float> vectors) {
  if (vectors.size() != starts.size() * size_t(dim_))
    throw Error(kind_ + " vectors of reference " + std::to_string(reference_key) + ": " +
                std::to_string(vectors.size()) + " values for " + std::to_string(starts.size()) +
                " windows of " + std::to_string(dim_));
  by_key_[reference_key] = {std::move(starts), std::move(vectors)};
}

void ModelVectors::finish() {
  index_ = VectorIndex::create(dim_, options_);
  std::vector<float> all;
  std::vector<int64_t> ids;
  for (const auto& [key, stored] : by_key_) {
    all.insert(all.end(), stored.vectors.begin(), stored.vectors.end());
    for (size_t w = 0; w < stored.starts.size(); ++w)
      ids.push_back(int64_t(key) << 32 | int64_t(w));
  }
  if (index_->needs_training() && !ids.empty()) index_->train(all.data(), ids.size());
  if (!ids.empty()) index_->add(all.data(), ids.size(), ids.data());
}

size_t ModelVectors::windows(uint32_t reference_key) const {
  auto it = by_key_.find(reference_key);
  return it == by_key_.end() ? 0 : it->second.starts.size();
}

const float* ModelVectors::vector(uint32_t reference_key, size_t window) const {
  return by_key_.at(reference_key).vectors.data() + window * size_t(dim_);
}

double ModelVectors::start(uint32_t reference_key, size_t window) const {
  return by_key_.at(reference_key).starts.at(window);
}

long ModelVectors::window_near(uint32_t reference_key, double t, double tolerance_s) const {
  auto it = by_key_.find(reference_key);
  if (it == by_key_.end()) return -1;
  long best = -1;
  double best_gap = tolerance_s;
  const std::vector<float>& starts = it->second.starts;
  for (size_t w = 0; w < starts.size(); ++w) {
    const double gap = std::fabs(double(starts[w]) - t);
    if (gap <= best_gap) best = long(w), best_gap = gap;
  }
  return best;
}

std::vector<ModelVectors::Neighbour> ModelVectors::search(const float* queries, size_t n,
                                                          int k) const {
  std::vector<Neighbour> out(n * size_t(k));
  if (!index_ || index_->size() == 0 || n == 0) return out;
  std::vector<float> sims(out.size());
  std::vector<int64_t> ids(out.size());
  index_->search(queries, n, k, sims.data(), ids.data());
  for (size_t i = 0; i < out.size(); ++i)
    if (ids[i] >= 0)
      out[i] = {sims[i], uint32_t(uint64_t(ids[i]) >> 32), uint32_t(ids[i] & 0xffffffff)};
  return out;
}

}  // namespace earmark
