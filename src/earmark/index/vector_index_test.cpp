#include "earmark/index/vector_index.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/index/vector_test_util.h"

namespace earmark {
namespace {

using testutil::unit_vectors;

// Share of vectors that find themselves first.
double self_recall(const VectorIndex& index, const std::vector<float>& x,
                   const std::vector<int64_t>& ids, int dim) {
  const size_t n = ids.size();
  std::vector<float> sims(n * 4);
  std::vector<int64_t> got(n * 4);
  index.search(x.data(), n, 4, sims.data(), got.data());
  size_t right = 0;
  for (size_t i = 0; i < n; ++i) {
    right += got[i * 4] == ids[i];
    EXPECT_GE(sims[i * 4], sims[i * 4 + 1]);
  }
  return double(right) / n;
}

TEST(VectorIndex, EveryTypeFindsAndPersists) {
  const int dim = 32;
  const size_t n = 3000;
  const std::vector<float> x = unit_vectors(n, dim, 1);
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = int64_t(i) * 7 + (int64_t(5) << 40);  // caller's ids
  testutil::TempDir dir;
  struct Case {
    std::string type;
    double min_recall;
  };
  for (const Case& c :
       {Case{"flat", 1.0}, Case{"hnsw", 0.99}, Case{"ivf-flat", 0.9}, Case{"ivf-pq", 0.6}}) {
    SCOPED_TRACE(c.type);
    VectorIndexOptions o;
    o.type = c.type;
    o.ivf_lists = 16;
    o.ivf_probe = 4;
    o.pq_bytes = 8;
    auto index = VectorIndex::create(dim, o);
    EXPECT_EQ(index->type(), c.type);
    EXPECT_EQ(index->needs_training(), c.type.rfind("ivf", 0) == 0);
    if (index->needs_training()) {
      EXPECT_THROW(index->add(x.data(), n, ids.data()), Error);
      index->train(x.data(), n);
    }
    // Incremental: two batches.
    index->add(x.data(), n / 2, ids.data());
    index->add(x.data() + (n / 2) * dim, n - n / 2, ids.data() + n / 2);
    ASSERT_EQ(index->size(), n);
    const double recall = self_recall(*index, x, ids, dim);
    EXPECT_GE(recall, c.min_recall);

    const std::string path = dir / (c.type + ".faiss");
    index->save(path);
    for (bool mmap : {false, true}) {
      auto loaded = VectorIndex::load(path, mmap, o);
      EXPECT_EQ(loaded->type(), c.type);
      EXPECT_EQ(loaded->size(), n);
      EXPECT_NEAR(self_recall(*loaded, x, ids, dim), recall, 0.02);
    }
    // A batch split between threads finds what one thread finds.
    {
      VectorIndexOptions two = o;
      two.search_threads = 2;
      auto a = VectorIndex::load(path, false, o), b = VectorIndex::load(path, false, two);
      const size_t m = 200;
      std::vector<float> sa(m * 4), sb(m * 4);
      std::vector<int64_t> ia(m * 4), ib(m * 4);
      a->search(x.data(), m, 4, sa.data(), ia.data());
      b->search(x.data(), m, 4, sb.data(), ib.data());
      EXPECT_EQ(ia, ib);
      EXPECT_EQ(sa, sb);
    }
    if (c.type == "hnsw") {
      EXPECT_THROW(index->remove({ids[0]}), Error);
    } else {
      EXPECT_EQ(index->remove({ids[0], ids[1], 12345}), 2u);
      EXPECT_EQ(index->size(), n - 2);
      float s;
      int64_t got;
      index->search(x.data(), 1, 1, &s, &got);
      EXPECT_NE(got, ids[0]);
    }
  }
}

TEST(VectorIndex, RefusesBadInput) {
  VectorIndexOptions o;
  o.type = "lsh";
  EXPECT_THROW(VectorIndex::create(32, o), Error);
  o.type = "hnsw";
  o.hnsw_ef_construction = 40;
  EXPECT_THROW(VectorIndex::create(32, o), Error);
  o = VectorIndexOptions();
  o.search_threads = 0;
  EXPECT_THROW(VectorIndex::create(32, o), Error);
  o = VectorIndexOptions();
  o.type = "ivf-pq";
  o.pq_bytes = 7;
  EXPECT_THROW(VectorIndex::create(32, o), Error);
  testutil::TempDir dir;
  EXPECT_THROW(VectorIndex::load(dir / "missing.faiss", false), Error);
  testutil::write_file(dir / "junk.faiss", "this is not a FAISS index");
  EXPECT_THROW(VectorIndex::load(dir / "junk.faiss", false), Error);
  auto flat = VectorIndex::create(8, VectorIndexOptions());
  float q[8] = {1, 0, 0, 0, 0, 0, 0, 0}, s[2];
  int64_t ids[2];
  flat->search(q, 1, 2, s, ids);  // empty: no results, no crash
  EXPECT_EQ(ids[0], -1);
}

}  // namespace
}  // namespace earmark
