#pragma once
// Approximate nearest-neighbour search over embedding vectors (inner product on unit vectors, i.e.
// cosine similarity), FAISS underneath. One interface, several index types, chosen by name:
//   flat      exact search (the reference for recall figures)
//   hnsw      graph search, no training; no removal (the catalogue hides removed references and
//             compaction rebuilds)
//   ivf-flat  inverted lists over k-means cells, full vectors; memory-mapped when loaded
//   ivf-pq    inverted lists with product-quantised vectors (16 bytes each by default)
// Batched and row-major like FAISS: add n vectors with n ids, search n queries for k neighbours.
// Ids are the caller's 64-bit values. This header is free of FAISS types.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace earmark {

struct VectorIndexOptions {
  std::string type = "flat";
  int hnsw_m = 32;  // graph degree
  int hnsw_ef_construction = 200;
  int hnsw_ef_search = 128;
  int ivf_lists = 1024;  // k-means cells
  int ivf_probe = 32;    // cells visited per query
  int pq_bytes = 16;     // ivf-pq: bytes per vector (sub-quantisers of 8 bits)
  // OpenMP threads for train and add (1 keeps an HNSW graph the same from run to run), and for
  // a batched search (queries are split between them; results do not depend on the count).
  int threads = 1;
  int search_threads = 1;

  void validate(int dim) const;  // throws earmark::Error on an unknown type or absurd values
};

class VectorIndex {
 public:
  static std::unique_ptr<VectorIndex> create(int dim, const VectorIndexOptions& options);
  // Reads an index written by save(). With `mmap`, IVF types map their lists instead of reading
  // them (the file must then stay in place while the index lives). Throws earmark::Error for a
  // missing or damaged file.
  static std::unique_ptr<VectorIndex> load(const std::string& path, bool mmap,
                                           const VectorIndexOptions& search_options = {});
  virtual ~VectorIndex() = default;

  virtual int dim() const = 0;
  virtual size_t size() const = 0;
  virtual std::string type() const = 0;
  // IVF types learn their cells (and PQ codebooks) from a sample before the first add; the others
  // need nothing.
  virtual bool needs_training() const = 0;
  virtual void train(const float* vectors, size_t n) = 0;
  virtual void add(const float* vectors, size_t n, const int64_t* ids) = 0;
  // For each of the n queries, the k most similar vectors: similarities[i*k + j] descending, ids
  // -1 where fewer than k exist.
  virtual void search(const float* queries, size_t n, int k, float* similarities,
                      int64_t* ids) const = 0;
  // Removes vectors by id; returns how many went. Throws earmark::Error where the type cannot.
  virtual size_t remove(const std::vector<int64_t>& ids) = 0;
  // Writes atomically (a temporary file renamed over the target).
  virtual void save(const std::string& path) const = 0;
  // Bytes the index holds in memory (or maps), for the size figures.
  virtual size_t bytes() const = 0;
};

}  // namespace earmark
