#include "earmark/index/reference_embeddings.h"

#include <gtest/gtest.h>

#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/index/vector_test_util.h"

namespace earmark {
namespace {

using testutil::TempDir;

constexpr int kDim = 16;

std::vector<float> unit_vectors(size_t n, uint64_t seed) {
  return testutil::unit_vectors(n, kDim, seed);
}

// References by key: (stamp, windows). Vectors are a function of (key, stamp).
struct Ref {
  uint32_t key;
  uint64_t stamp;
  size_t windows;
};

std::unique_ptr<ReferenceEmbeddings> catalogue(const std::string& type,
                                               const std::vector<Ref>& refs) {
  VectorIndexOptions o;
  o.type = type;
  auto e = std::make_unique<ReferenceEmbeddings>(kDim, 0.5, o);
  for (const Ref& r : refs) e->add(r.key, unit_vectors(r.windows, r.key * 1000 + r.stamp), r.stamp);
  return e;
}

// Where the nearest neighbour of window w of reference `r` lands.
int64_t nearest(const ReferenceEmbeddings& e, const Ref& r, size_t w) {
  const auto x = unit_vectors(r.windows, r.key * 1000 + r.stamp);
  float sim[1];
  int64_t id[1];
  e.index().search(x.data() + w * kDim, 1, 1, sim, id);
  return id[0];
}

class ReferenceEmbeddingsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_TRUE(tmp_.ok()); }
  TempDir tmp_;
};

// Adding references continues the saved index (their windows only); removing them removes their
// windows where the type can, and otherwise leaves them in, counted in the coverage.
TEST_P(ReferenceEmbeddingsTest, ResumesTheSavedIndexWithWhatWasAddedAndRemoved) {
  const std::string type = GetParam();
  const Ref a{1, 100, 40}, b{2, 200, 30}, c{3, 300, 25};
  auto first = catalogue(type, {a, b});
  first->finish();
  ASSERT_EQ(first->vectors(), 70u);
  const std::string saved_path = tmp_ / "index.faiss";
  first->index().save(saved_path);
  const std::string saved = first->coverage();

  // Nothing changed: taken as it is.
  auto same = catalogue(type, {a, b});
  EXPECT_FALSE(same->resume(VectorIndex::load(saved_path, false), saved));
  EXPECT_EQ(same->coverage(), saved);

  // One more reference: its windows are added and found.
  auto grown = catalogue(type, {a, b, c});
  EXPECT_TRUE(grown->resume(VectorIndex::load(saved_path, false), saved));
  EXPECT_EQ(grown->vectors(), 95u);
  EXPECT_EQ(nearest(*grown, c, 7), window_id(3, 7));
  EXPECT_EQ(nearest(*grown, a, 3), window_id(1, 3));
  auto fresh = catalogue(type, {a, b, c});
  fresh->finish();
  EXPECT_EQ(grown->coverage(), fresh->coverage());

  // One reference removed.
  auto shrunk = catalogue(type, {a});
  const bool changed = shrunk->resume(VectorIndex::load(saved_path, false), saved);
  if (type == "hnsw") {
    EXPECT_FALSE(changed);
    EXPECT_EQ(shrunk->vectors(), 70u) << "a graph index keeps the windows, hidden";
    EXPECT_EQ(shrunk->windows(2), 0u);
    EXPECT_EQ(shrunk->coverage(), saved);
  } else {
    EXPECT_TRUE(changed);
    EXPECT_EQ(shrunk->vectors(), 40u);
    EXPECT_NE(reference_of(nearest(*shrunk, b, 0)), 2u);
  }
  EXPECT_EQ(nearest(*shrunk, a, 11), window_id(1, 11));
}

// A saved index that does not fit is refused, and the catalogue's own index is left as it was.
TEST_P(ReferenceEmbeddingsTest, RefusesASavedIndexThatDoesNotFit) {
  const std::string type = GetParam();
  const Ref a{1, 100, 40}, b{2, 200, 30};
  auto first = catalogue(type, {a, b});
  first->finish();
  const std::string saved_path = tmp_ / "index.faiss";
  first->index().save(saved_path);
  const std::string saved = first->coverage();

  auto expect_refused = [&](const std::vector<Ref>& refs, const std::string& coverage,
                            const std::string& what) {
    auto e = catalogue(type, refs);
    EXPECT_THROW(e->resume(VectorIndex::load(saved_path, false), coverage), Error) << what;
    EXPECT_EQ(e->vectors(), 0u) << what;
    e->finish();  // and a fresh build still works
    size_t total = 0;
    for (const Ref& r : refs) total += r.windows;
    EXPECT_EQ(e->vectors(), total) << what;
  };
  // The key of a removed reference given to a new one (other stamp), same window count.
  expect_refused({a, {2, 201, 30}}, saved, "reused key");
  expect_refused({a, {2, 200, 31}}, saved, "other window count");
  expect_refused({a, b}, "1a2b3c4d5e6f7a8b", "coverage of an older build");
  expect_refused({a, b}, R"({"type":")" + type + R"(","dim":16,"references":[[1,100,40]]})",
                 "coverage short of the index");
  expect_refused({a, b}, R"({"type":")" + type + R"(","dim":16,"references":[[1,"x",40]]})",
                 "damaged coverage");
  expect_refused({a, b}, R"({"type":"ivf-pq","dim":16,"references":[]})", "other type");
}

INSTANTIATE_TEST_SUITE_P(Types, ReferenceEmbeddingsTest, ::testing::Values("hnsw", "flat"));

}  // namespace
}  // namespace earmark
