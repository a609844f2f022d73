#pragma once
// The catalogue's reference window vectors for the embedding stage: kept at full precision by
// reference (the sequence matcher re-scores with them) and indexed for nearest-neighbour search.
#include <cstdint>
#include <map>
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
  // One reference's windows (windows x dim row-major), under its catalogue key. `stamp` tells
  // this reference from an earlier one that had the same key (the catalogue reuses the key of a
  // removed last row; the frame base on its timeline is never reused).
  void add(uint32_t reference_key, std::vector<float> vectors, uint64_t stamp = 0);
  // Builds the search index over everything added (trains it first where the type needs it).
  void finish();
  // Or continues an index saved before, with `saved` its coverage() then: the windows of
  // references added since are added to it, and those of references removed since are removed
  // where the type can (a graph index keeps them, hidden: they have no windows here, and
  // compaction rebuilds). So adding a reference to a large catalogue costs its own windows, not
  // a rebuild. Throws earmark::Error, changing nothing, when the saved index does not fit (other
  // type or dimension, or a key whose reference or windows changed); the caller then builds
  // afresh. Returns whether the index changed (and should be saved again).
  bool resume(std::unique_ptr<VectorIndex> saved_index, const std::string& saved);
  // What the search index covers (JSON): its type, dimension and, per reference it holds windows
  // of, the key, stamp and window count.
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
  struct Stored {
    std::vector<float> vectors;
    uint64_t stamp = 0;
  };
  struct Covered {
    uint64_t stamp = 0;
    size_t windows = 0;
  };
  // Appends the windows (and their ids) of every reference not in `covered` and records them
  // there.
  void gather_uncovered(std::map<uint32_t, Covered>& covered, std::vector<float>& vectors,
                        std::vector<int64_t>& ids) const;

  std::unique_ptr<VectorIndex> index_;
  std::unordered_map<uint32_t, Stored> by_key_;
  std::map<uint32_t, Covered> covered_;  // what index_ holds, removed references included
};

}  // namespace earmark
