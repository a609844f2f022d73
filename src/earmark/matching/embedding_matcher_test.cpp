#include "earmark/matching/embedding_matcher.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "earmark/common/error.h"

namespace earmark {
namespace {

constexpr int kDim = 32;

class Vectors : public ReferenceVectors {
 public:
  std::vector<std::vector<float>> refs;
  size_t windows(uint32_t r) const override { return r < refs.size() ? refs[r].size() / kDim : 0; }
  const float* vector(uint32_t r, size_t w) const override { return refs[r].data() + w * kDim; }
};

void normalise(float* v) {
  double n = 0;
  for (int k = 0; k < kDim; ++k) n += double(v[k]) * v[k];
  for (int k = 0; k < kDim; ++k) v[k] /= float(std::sqrt(n));
}

// A stand-in for what a trained network gives: each reference moment has its own direction, and a
// moment between two reference windows lies between their vectors.
struct World {
  Vectors store;
  std::unique_ptr<VectorIndex> index = VectorIndex::create(kDim, VectorIndexOptions());
  std::mt19937 rng{5};

  World() {
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (uint32_t r = 0; r < 4; ++r) {
      std::vector<float> v(40 * kDim);  // 20 s at a 0.5 s hop
      for (float& x : v) x = d(rng);
      for (size_t w = 0; w < 40; ++w) normalise(v.data() + w * kDim);
      std::vector<int64_t> ids;
      for (uint32_t w = 0; w < 40; ++w) ids.push_back(window_id(r, w));
      index->add(v.data(), 40, ids.data());
      store.refs.push_back(std::move(v));
    }
  }
  // The vector at reference time t, with noise of the given strength.
  void at(uint32_t r, double t, float noise, float* out) {
    std::normal_distribution<float> d(0.0f, noise);
    const double w = t / 0.5;
    const size_t lo = size_t(w);
    const double a = w - double(lo);
    const float* x = store.vector(r, lo);
    const float* y = store.vector(r, std::min<size_t>(lo + 1, 39));
    for (int k = 0; k < kDim; ++k) out[k] = float((1 - a) * x[k] + a * y[k]) + d(rng);
    normalise(out);
  }
  void random(float* out) {
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (int k = 0; k < kDim; ++k) out[k] = d(rng);
    normalise(out);
  }
};

TEST(EmbeddingMatcher, FindsTheExcerptItsSpanAndOffset) {
  World world;
  // Random directions in 32 dimensions: the background is near 0, not a large catalogue's.
  EmbeddingMatchOptions o;
  o.background_floor = 0.0;
  EmbeddingMatcher matcher(*world.index, world.store, 0.5, o);
  // 2 s of unrelated audio, then 3 s of reference 2 from 7.3 s, then 1 s unrelated; 0.1 s hop.
  std::vector<float> q(60 * kDim);
  for (size_t j = 0; j < 60; ++j) {
    if (j >= 20 && j < 50)
      world.at(2, 7.3 + 0.1 * double(j - 20), 0.15f, q.data() + j * kDim);
    else
      world.random(q.data() + j * kDim);
  }
  auto matches = matcher.match(q.data(), 60, 0.1, 0.97);
  ASSERT_FALSE(matches.empty());
  const EmbeddingMatch& m = matches[0];
  EXPECT_EQ(m.reference, 2u);
  EXPECT_NEAR(m.offset_s, 7.3 - 2.0, 0.101);
  EXPECT_NEAR(m.query_start, 2.0, 0.21);
  EXPECT_NEAR(m.query_end, 4.9 + 0.97, 0.21);
  EXPECT_GT(m.margin, 0.3);
  for (size_t i = 1; i < matches.size(); ++i) EXPECT_LT(matches[i].evidence, m.evidence);

  // Unrelated audio alone: nothing stands out from its background.
  std::vector<float> noise(30 * kDim);
  for (size_t j = 0; j < 30; ++j) world.random(noise.data() + j * kDim);
  auto none = matcher.match(noise.data(), 30, 0.1, 0.97);
  for (const auto& x : none) EXPECT_LT(x.evidence, m.evidence / 4);

  EXPECT_TRUE(matcher.match(q.data(), 0, 0.1, 0.97).empty());
  EXPECT_THROW(EmbeddingMatcher(*world.index, world.store, 0.0), Error);
  EXPECT_EQ(reference_of(window_id(77, 123)), 77u);
  EXPECT_EQ(window_of(window_id(77, 123)), 123u);
}

}  // namespace
}  // namespace earmark
