#include "earmark/index/reference_embeddings.h"

#include <algorithm>
#include <cstdio>

#include "earmark/common/checksum.h"
#include "earmark/common/error.h"

namespace earmark {

ReferenceEmbeddings::ReferenceEmbeddings(int dim, double hop_s, const VectorIndexOptions& options)
    : dim_(dim), hop_s_(hop_s), index_(VectorIndex::create(dim, options)) {}

void ReferenceEmbeddings::finish(std::unique_ptr<VectorIndex> prebuilt) {
  if (!prebuilt || prebuilt->dim() != dim_ || prebuilt->type() != index_->type())
    throw Error("saved vector index does not fit the catalogue's vectors");
  size_t total = 0;
  for (const auto& [key, v] : by_key_) total += v.size() / size_t(dim_);
  if (prebuilt->size() != total) throw Error("saved vector index does not cover the catalogue");
  index_ = std::move(prebuilt);
}

std::string ReferenceEmbeddings::coverage() const {
  std::vector<std::pair<uint32_t, size_t>> items;
  for (const auto& [key, v] : by_key_) items.emplace_back(key, v.size());
  std::sort(items.begin(), items.end());
  uint64_t h = kFnvSeed;
  for (const auto& [key, n] : items) {
    const uint64_t pair[2] = {key, n};
    h = fnv1a(h, pair, sizeof pair);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  return index_->type() + "-" + std::to_string(items.size()) + "-" + hex;
}

void ReferenceEmbeddings::add(uint32_t key, std::vector<float> vectors) {
  if (vectors.size() % size_t(dim_) != 0)
    throw Error("embeddings of reference key " + std::to_string(key) + " are not whole vectors");
  if (vectors.size() / size_t(dim_) >= (size_t(1) << kWindowBits))
    throw Error("reference key " + std::to_string(key) + " has too many windows to index");
  by_key_[key] = std::move(vectors);
}

void ReferenceEmbeddings::finish() {
  std::vector<float> all;
  std::vector<int64_t> ids;
  for (const auto& [key, v] : by_key_) {
    all.insert(all.end(), v.begin(), v.end());
    for (size_t w = 0; w < v.size() / size_t(dim_); ++w) ids.push_back(window_id(key, uint32_t(w)));
  }
  if (ids.empty()) return;
  if (index_->needs_training()) index_->train(all.data(), ids.size());
  index_->add(all.data(), ids.size(), ids.data());
}

size_t ReferenceEmbeddings::windows(uint32_t key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? 0 : it->second.size() / size_t(dim_);
}

const float* ReferenceEmbeddings::vector(uint32_t key, size_t window) const {
  return by_key_.at(key).data() + window * size_t(dim_);
}

}  // namespace earmark
