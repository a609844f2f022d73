#include "earmark/index/vector_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_io.h>
#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "earmark/common/error.h"
#include "earmark/storage/atomic_file.h"

namespace earmark {

void VectorIndexOptions::validate(int dim) const {
  if (type != "flat" && type != "hnsw" && type != "ivf-flat" && type != "ivf-pq")
    throw Error("vector index: unknown type '" + type + "' (flat, hnsw, ivf-flat, ivf-pq)");
  if (dim < 2 || dim > 65536) throw Error("vector index: dimension must be in [2, 65536]");
  if (hnsw_m < 4 || hnsw_m > 256) throw Error("vector index: hnsw_m must be in [4, 256]");
  // hnswlib and FAISS both lose recall badly with a shallow construction search.
  if (hnsw_ef_construction < 100 || hnsw_ef_construction > 4096)
    throw Error("vector index: hnsw_ef_construction must be in [100, 4096]");
  if (hnsw_ef_search < 1 || hnsw_ef_search > 65536) throw Error("vector index: bad hnsw_ef_search");
  if (ivf_lists < 1 || ivf_lists > (1 << 22)) throw Error("vector index: bad ivf_lists");
  if (ivf_probe < 1 || ivf_probe > ivf_lists) throw Error("vector index: ivf_probe in [1, lists]");
  if (type == "ivf-pq" && (pq_bytes < 1 || dim % pq_bytes != 0))
    throw Error("vector index: pq_bytes must divide the dimension");
  if (threads < 1 || threads > 256 || search_threads < 1 || search_threads > 256)
    throw Error("vector index: threads in [1, 256]");
}

namespace {

// OpenMP threads for one call, restored afterwards: single queries run best on one thread, and
// the caller decides.
class ThreadScope {
 public:
  explicit ThreadScope(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ThreadScope() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

class FaissVectorIndex : public VectorIndex {
 public:
  FaissVectorIndex(std::unique_ptr<faiss::Index> index, std::string type,
                   const VectorIndexOptions& options)
      : index_(std::move(index)), type_(std::move(type)), options_(options) {
    apply_search_options();
  }

  int dim() const override { return int(index_->d); }
  size_t size() const override { return size_t(index_->ntotal); }
  std::string type() const override { return type_; }
  bool needs_training() const override { return !index_->is_trained; }

  void train(const float* vectors, size_t n) override {
    guard([&] {
      ThreadScope t(options_.threads);
      index_->train(faiss::Index::idx_t(n), vectors);
    });
  }

  void add(const float* vectors, size_t n, const int64_t* ids) override {
    if (needs_training()) throw Error("vector index: " + type_ + " must be trained before add");
    guard([&] {
      ThreadScope t(options_.threads);
      index_->add_with_ids(faiss::Index::idx_t(n), vectors,
                           reinterpret_cast<const faiss::Index::idx_t*>(ids));
    });
  }

  void search(const float* queries, size_t n, int k, float* similarities,
              int64_t* ids) const override {
    if (k < 1) throw Error("vector index: k must be at least 1");
    guard([&] {
      // One query gains nothing from more threads but their start-up.
      ThreadScope t(n > 1 ? options_.search_threads : 1);
      index_->search(faiss::Index::idx_t(n), queries, k, similarities,
                     reinterpret_cast<faiss::Index::idx_t*>(ids));
    });
  }

  size_t remove(const std::vector<int64_t>& ids) override {
    if (type_ == "hnsw")
      throw Error("vector index: hnsw cannot remove vectors; rebuild it without them");
    size_t removed = 0;
    guard([&] {
      faiss::IDSelectorBatch sel(ids.size(),
                                 reinterpret_cast<const faiss::Index::idx_t*>(ids.data()));
      removed = index_->remove_ids(sel);
    });
    return removed;
  }

  void save(const std::string& path) const override {
    // FAISS writes to a path: write beside the target, fsync, rename.
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    guard([&] { faiss::write_index(index_.get(), tmp.c_str()); });
    int fd = ::open(tmp.c_str(), O_RDONLY);
    const bool synced = fd >= 0 && ::fsync(fd) == 0;
    if (fd >= 0) ::close(fd);
    if (!synced || std::rename(tmp.c_str(), path.c_str()) != 0) {
      std::remove(tmp.c_str());
      throw Error("vector index: cannot write " + path);
    }
    sync_directory(std::filesystem::path(path).parent_path().string());
  }

  size_t bytes() const override {
    const size_t n = size(), d = size_t(dim());
    if (type_ == "flat" || type_ == "ivf-flat") return n * (d * 4 + 8);
    if (type_ == "hnsw") return n * (d * 4 + 8 + size_t(options_.hnsw_m) * 2 * 4);
    return n * (size_t(options_.pq_bytes) + 8);
  }

 private:
  template <typename F>
  void guard(F&& f) const {
    try {
      f();
    } catch (const faiss::FaissException& e) {
      throw Error(std::string("vector index: ") + e.what());
    }
  }

  void apply_search_options() {
    faiss::Index* inner = index_.get();
    if (auto* map = dynamic_cast<faiss::IndexIDMap2*>(inner)) inner = map->index;
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(inner))
      hnsw->hnsw.efSearch = options_.hnsw_ef_search;
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(inner))
      ivf->nprobe = size_t(std::min<int64_t>(options_.ivf_probe, int64_t(ivf->nlist)));
  }

  std::unique_ptr<faiss::Index> index_;
  std::string type_;
  VectorIndexOptions options_;
};

std::string type_of(const faiss::Index* index) {
  const faiss::Index* inner = index;
  if (auto* map = dynamic_cast<const faiss::IndexIDMap2*>(inner)) inner = map->index;
  if (dynamic_cast<const faiss::IndexHNSW*>(inner)) return "hnsw";
  if (dynamic_cast<const faiss::IndexIVFPQ*>(inner)) return "ivf-pq";
  if (dynamic_cast<const faiss::IndexIVFFlat*>(inner)) return "ivf-flat";
  if (dynamic_cast<const faiss::IndexFlat*>(inner)) return "flat";
  return "";
}

}  // namespace

std::unique_ptr<VectorIndex> VectorIndex::create(int dim, const VectorIndexOptions& o) {
  o.validate(dim);
  std::unique_ptr<faiss::Index> index;
  if (o.type == "flat") {
    auto map = std::make_unique<faiss::IndexIDMap2>(new faiss::IndexFlatIP(dim));
    map->own_fields = true;
    index = std::move(map);
  } else if (o.type == "hnsw") {
    auto* hnsw = new faiss::IndexHNSWFlat(dim, o.hnsw_m, faiss::METRIC_INNER_PRODUCT);
    hnsw->hnsw.efConstruction = o.hnsw_ef_construction;
    auto map = std::make_unique<faiss::IndexIDMap2>(hnsw);
    map->own_fields = true;
    index = std::move(map);
  } else if (o.type == "ivf-flat") {
    auto ivf = std::make_unique<faiss::IndexIVFFlat>(
        new faiss::IndexFlatIP(dim), dim, size_t(o.ivf_lists), faiss::METRIC_INNER_PRODUCT);
    ivf->own_fields = true;
    index = std::move(ivf);
  } else {
    auto ivf =
        std::make_unique<faiss::IndexIVFPQ>(new faiss::IndexFlatIP(dim), dim, size_t(o.ivf_lists),
                                            size_t(o.pq_bytes), 8, faiss::METRIC_INNER_PRODUCT);
    ivf->own_fields = true;
    index = std::move(ivf);
  }
  return std::make_unique<FaissVectorIndex>(std::move(index), o.type, o);
}

std::unique_ptr<VectorIndex> VectorIndex::load(const std::string& path, bool mmap,
                                               const VectorIndexOptions& search_options) {
  if (!std::filesystem::is_regular_file(path))
    throw Error("vector index: " + path + ": no such file");
  std::unique_ptr<faiss::Index> index;
  try {
    index.reset(faiss::read_index(path.c_str(), mmap ? faiss::IO_FLAG_MMAP : 0));
  } catch (const faiss::FaissException& e) {
    throw Error("vector index: " + path + " is damaged or not an index: " + e.what());
  }
  const std::string type = type_of(index.get());
  if (type.empty()) throw Error("vector index: " + path + " holds an unsupported index type");
  VectorIndexOptions o = search_options;
  o.type = type;
  return std::make_unique<FaissVectorIndex>(std::move(index), type, o);
}

}  // namespace earmark
