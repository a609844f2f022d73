#include "earmark/index/reference_embeddings.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "earmark/common/error.h"

namespace earmark {

ReferenceEmbeddings::ReferenceEmbeddings(int dim, double hop_s, const VectorIndexOptions& options)
    : dim_(dim), hop_s_(hop_s), index_(VectorIndex::create(dim, options)) {}

std::string ReferenceEmbeddings::coverage() const {
  nlohmann::json refs = nlohmann::json::array();
  for (const auto& [key, c] : covered_) refs.push_back({key, c.stamp, c.windows});
  return nlohmann::json{{"type", index_->type()}, {"dim", dim_}, {"references", refs}}.dump();
}

bool ReferenceEmbeddings::resume(std::unique_ptr<VectorIndex> saved_index,
                                 const std::string& saved) {
  auto misfit = [](const std::string& why) { throw Error("saved vector index " + why); };
  if (!saved_index || saved_index->dim() != dim_ || saved_index->type() != index_->type())
    misfit("is of another type or dimension");
  const nlohmann::json j = nlohmann::json::parse(saved, nullptr, false);
  std::map<uint32_t, Covered> covered;
  size_t total = 0;
  try {
    if (!j.is_object() || j.value("type", "") != index_->type() || j.value("dim", 0) != dim_ ||
        !j.contains("references") || !j["references"].is_array())
      misfit("has no coverage this build reads");
    for (const auto& r : j["references"]) {
      if (!r.is_array() || r.size() != 3) misfit("has a damaged coverage");
      const uint32_t key = r[0].get<uint32_t>();
      const Covered c{r[1].get<uint64_t>(), r[2].get<size_t>()};
      auto it = by_key_.find(key);
      if (it != by_key_.end() &&
          (it->second.stamp != c.stamp || it->second.vectors.size() / size_t(dim_) != c.windows))
        misfit("holds other windows under key " + std::to_string(key));
      covered[key] = c;
      total += c.windows;
    }
  } catch (const nlohmann::json::exception&) {
    misfit("has a damaged coverage");
  }
  if (total != saved_index->size()) misfit("does not hold what its coverage says");

  // Everything checked: now change the loaded index only, and take it when all went through.
  bool changed = false;
  std::vector<int64_t> gone;
  std::vector<uint32_t> gone_keys;
  for (const auto& [key, c] : covered) {
    if (by_key_.count(key)) continue;
    for (size_t w = 0; w < c.windows; ++w) gone.push_back(window_id(key, uint32_t(w)));
    gone_keys.push_back(key);
  }
  if (!gone.empty()) {
    try {
      saved_index->remove(gone);
      for (uint32_t key : gone_keys) covered.erase(key);
      changed = true;
    } catch (const Error&) {
      // A graph index cannot remove: the windows stay, hidden (no reference has them here).
    }
  }
  std::vector<float> fresh;
  std::vector<int64_t> ids;
  gather_uncovered(covered, fresh, ids);
  if (!ids.empty()) {
    saved_index->add(fresh.data(), ids.size(), ids.data());
    changed = true;
  }
  index_ = std::move(saved_index);
  covered_ = std::move(covered);
  return changed;
}

void ReferenceEmbeddings::add(uint32_t key, std::vector<float> vectors, uint64_t stamp) {
  if (vectors.size() % size_t(dim_) != 0)
    throw Error("embeddings of reference key " + std::to_string(key) + " are not whole vectors");
  if (vectors.size() / size_t(dim_) >= (size_t(1) << kWindowBits))
    throw Error("reference key " + std::to_string(key) + " has too many windows to index");
  by_key_[key] = {std::move(vectors), stamp};
}

void ReferenceEmbeddings::gather_uncovered(std::map<uint32_t, Covered>& covered,
                                           std::vector<float>& vectors,
                                           std::vector<int64_t>& ids) const {
  for (const auto& [key, stored] : by_key_) {
    if (covered.count(key)) continue;
    const std::vector<float>& v = stored.vectors;
    vectors.insert(vectors.end(), v.begin(), v.end());
    const size_t windows = v.size() / size_t(dim_);
    for (size_t w = 0; w < windows; ++w) ids.push_back(window_id(key, uint32_t(w)));
    covered[key] = {stored.stamp, windows};
  }
}

void ReferenceEmbeddings::finish() {
  std::vector<float> all;
  std::vector<int64_t> ids;
  gather_uncovered(covered_, all, ids);
  if (ids.empty()) return;
  if (index_->needs_training()) index_->train(all.data(), ids.size());
  index_->add(all.data(), ids.size(), ids.data());
}

size_t ReferenceEmbeddings::windows(uint32_t key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? 0 : it->second.vectors.size() / size_t(dim_);
}

const float* ReferenceEmbeddings::vector(uint32_t key, size_t window) const {
  return by_key_.at(key).vectors.data() + window * size_t(dim_);
}

}  // namespace earmark
