#pragma once
// The catalogue's reference window vectors for the embedding stage: kept at full precision by
// reference (the sequence matcher re-scores with them) and indexed for nearest-neighbour search.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "earmark/index/vector_index.h"
#include "earmark/matching/embedding_matcher.h"

namespace earmark {

class ReferenceEmbeddings : public ReferenceVectors {
 public:
  ReferenceEmbeddings(int dim, double hop_s, const VectorIndexOptions& options = {});
  // One reference's windows (windows x dim row-major), under its catalogue key.
  void add(uint32_t reference_key, std::vector<float> vectors);
  // Builds the search index over everything added (trains it first where the type needs it).
  void finish();
  // Or takes one built before over exactly these vectors (loaded from disk).
  void finish(std::unique_ptr<VectorIndex> prebuilt);
  // Identifies what the search index covers: the references' keys and window counts, and the
  // index type. A saved index is reused only while this is unchanged.
  std::string coverage() const;

  const VectorIndex& index() const { return *index_; }
  double hop_s() const { return hop_s_; }
  int dim() const { return dim_; }
  size_t vectors() const { return index_->size(); }
  size_t windows(uint32_t reference_key) const override;
  const float* vector(uint32_t reference_key, size_t window) const override;

 private:
  int dim_;
  double hop_s_;
  std::unique_ptr<VectorIndex> index_;
  std::unordered_map<uint32_t, std::vector<float>> by_key_;
};

}  // namespace earmark
