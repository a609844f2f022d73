#pragma once
// One published model's reference vectors (embeddings/clip_model.h): per reference, its windows'
// start times and unit vectors, kept at full precision to score candidates at their aligned
// offsets, and a vector index over all of them for the model's own search.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "earmark/index/vector_index.h"

namespace earmark {

class ModelVectors {
 public:
  ModelVectors(std::string kind, int dim, const VectorIndexOptions& options);

  // One reference's windows under its catalogue key: starts in seconds, vectors windows x dim.
  // Throws earmark::Error when the sizes disagree.
  void add(uint32_t reference_key, std::vector<float> starts, std::vector<float> vectors);
  // Builds the search index over everything added.
  void finish();

  const std::string& kind() const { return kind_; }
  int dim() const { return dim_; }
  size_t vectors() const { return index_ ? index_->size() : 0; }
  size_t windows(uint32_t reference_key) const;
  const float* vector(uint32_t reference_key, size_t window) const;
  double start(uint32_t reference_key, size_t window) const;
  // The window of the reference whose start is nearest `t` seconds, or -1 when the reference has
  // none within `tolerance_s`.
  long window_near(uint32_t reference_key, double t, double tolerance_s) const;

  // For each of n query vectors, its k nearest reference windows: similarity, reference key and
  // window, best first (key 0 where fewer exist; catalogue keys start at 1).
  struct Neighbour {
    float similarity = 0;
    uint32_t reference_key = 0;
    uint32_t window = 0;
  };
  std::vector<Neighbour> search(const float* queries, size_t n, int k) const;

 private:
  struct Stored {
    std::vector<float> starts, vectors;
  };
  std::string kind_;
  int dim_;
  VectorIndexOptions options_;
  std::unordered_map<uint32_t, Stored> by_key_;
  std::unique_ptr<VectorIndex> index_;
};

}  // namespace earmark
