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

// A stand-in for what the trained network gives: every moment (on a 0.1 s grid) has its own
// direction, shared in part with the moments 0.1 s either side, so that a window 0.1 s off is
// still similar (about 0.67) and one 0.2 s off hardly (0.17), as the network's are. The
// references keep every fifth moment: a 0.5 s hop.
struct World {
  static constexpr size_t kMoments = 200, kWindows = 40;  // 20 s
  Vectors store;
  std::vector<std::vector<float>> moments;  // per reference, kMoments x kDim
  std::unique_ptr<VectorIndex> index = VectorIndex::create(kDim, VectorIndexOptions());
  std::mt19937 rng{5};

  World() {
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (uint32_t r = 0; r < 4; ++r) {
      std::vector<float> g((kMoments + 2) * kDim), m(kMoments * kDim), v(kWindows * kDim);
      for (float& x : g) x = d(rng);
      for (size_t i = 0; i < kMoments; ++i) {
        for (int k = 0; k < kDim; ++k)
          m[i * kDim + k] =
              g[(i + 1) * kDim + k] + 0.5f * (g[i * kDim + k] + g[(i + 2) * kDim + k]);
        normalise(m.data() + i * kDim);
      }
      for (size_t w = 0; w < kWindows; ++w)
        std::copy_n(m.data() + 5 * w * kDim, kDim, v.data() + w * kDim);
      std::vector<int64_t> ids;
      for (uint32_t w = 0; w < kWindows; ++w) ids.push_back(window_id(r, w));
      index->add(v.data(), kWindows, ids.data());
      store.refs.push_back(std::move(v));
      moments.push_back(std::move(m));
    }
  }
  // The vector at reference time t, with noise of the given strength.
  void at(uint32_t r, double t, float noise, float* out) {
    std::normal_distribution<float> d(0.0f, noise);
    const size_t i = std::min<size_t>(size_t(std::lround(t / 0.1)), kMoments - 1);
    for (int k = 0; k < kDim; ++k) out[k] = moments[r][i * kDim + k] + d(rng);
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

TEST(EmbeddingMatcher, FollowsASpeedChange) {
  World world;
  EmbeddingMatchOptions o;
  o.background_floor = 0.0;
  // 8 s of reference 1 from 3 s, played 4.5 % fast: 0.36 s of drift end to end.
  std::vector<float> q(80 * kDim);
  for (size_t j = 0; j < 80; ++j)
    world.at(1, 3.0 + 1.045 * 0.1 * double(j), 0.1f, q.data() + j * kDim);
  const auto found =
      EmbeddingMatcher(*world.index, world.store, 0.5, o).match(q.data(), 80, 0.1, 0.97);
  o.max_speed_change = 0;
  const auto fixed =
      EmbeddingMatcher(*world.index, world.store, 0.5, o).match(q.data(), 80, 0.1, 0.97);
  ASSERT_FALSE(found.empty());
  ASSERT_FALSE(fixed.empty());
  const EmbeddingMatch& m = found[0];
  EXPECT_EQ(m.reference, 1u);
  EXPECT_NEAR(m.speed, 1.045, 0.016);
  EXPECT_EQ(fixed[0].speed, 1.0);
  // Reference time at the segment's start and end.
  EXPECT_NEAR(m.reference_time(m.query_start), 3.0 + 1.045 * m.query_start, 0.11);
  const double end = m.query_end - 0.97;  // the last window's start
  EXPECT_NEAR(m.reference_time(end), 3.0 + 1.045 * end, 0.11);
  EXPECT_GT(m.evidence, fixed[0].evidence);
  EXPECT_GT(m.margin, fixed[0].margin);

  o.max_speed_change = 0.7;
  EXPECT_THROW(EmbeddingMatcher(*world.index, world.store, 0.5, o), Error);
  o.max_speed_change = 0.06;
  o.speed_step = 0;
  EXPECT_THROW(EmbeddingMatcher(*world.index, world.store, 0.5, o), Error);
}

TEST(EmbeddingMatcher, MarginIsTheLeadOverOtherReferences) {
  World world;
  EmbeddingMatchOptions o;
  o.background_floor = 0.0;
  o.runner_up_weight = 0.5;  // off by default; its arithmetic is checked here
  EmbeddingMatcher matcher(*world.index, world.store, 0.5, o);
  // 3 s of reference 0; then the same 3 s blended with reference 3 (two recordings at once, or a
  // query that looks like two places of the catalogue).
  std::vector<float> clean(30 * kDim), blend(30 * kDim), other(kDim);
  for (size_t j = 0; j < 30; ++j) {
    const double t = 5.0 + 0.1 * double(j);
    world.at(0, t, 0.1f, clean.data() + j * kDim);
    std::copy(clean.begin() + j * kDim, clean.begin() + (j + 1) * kDim, blend.begin() + j * kDim);
    world.at(3, t + 4.0, 0.0f, other.data());
    for (int k = 0; k < kDim; ++k) blend[j * kDim + k] += 0.9f * other[k];
    normalise(blend.data() + j * kDim);
  }
  const auto a = matcher.match(clean.data(), 30, 0.1, 0.97);
  const auto b = matcher.match(blend.data(), 30, 0.1, 0.97);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(a[0].reference, 0u);
  for (const auto& m : a) {
    EXPECT_NEAR(m.strength, m.margin + o.length_bonus * std::log(std::max(1.0, m.windows * 1.0)),
                1e-9);
    EXPECT_NEAR(m.decision, m.strength - 0.5 * m.runner_up, 1e-9);
  }
  // In the blend, every window of reference 0 has a rival in reference 3: the margins, each
  // window's lead over the best other reference, shrink, and so does the decision.
  EXPECT_TRUE(b[0].reference == 0u || b[0].reference == 3u);
  EXPECT_LT(b[0].margin, a[0].margin - 0.2);
  EXPECT_LT(b[0].decision, a[0].decision - 0.1);
  double best_other = 0;
  for (const auto& m : b)
    if (m.reference != b[0].reference) best_other = std::max(best_other, m.strength);
  EXPECT_NEAR(b[0].runner_up, best_other, 1e-12);

  o.runner_up_weight = 3;
  EXPECT_THROW(EmbeddingMatcher(*world.index, world.store, 0.5, o), Error);
}

TEST(EmbeddingMatcher, ARemovedReferenceIsNoRival) {
  World world;
  // Reference 4: a second copy of reference 0, as when one recording is indexed twice.
  std::vector<int64_t> ids;
  for (uint32_t w = 0; w < World::kWindows; ++w) ids.push_back(window_id(4, w));
  world.index->add(world.store.refs[0].data(), World::kWindows, ids.data());
  world.store.refs.push_back(world.store.refs[0]);
  EmbeddingMatchOptions o;
  o.background_floor = 0.0;
  EmbeddingMatcher matcher(*world.index, world.store, 0.5, o);
  std::vector<float> q(30 * kDim);
  for (size_t j = 0; j < 30; ++j) world.at(0, 5.0 + 0.1 * double(j), 0.1f, q.data() + j * kDim);
  // Each copy is the other's rival: neither leads.
  int copies = 0;
  for (const auto& m : matcher.match(q.data(), 30, 0.1, 0.97))
    if (m.reference == 0 || m.reference == 4) {
      EXPECT_LT(m.margin, 0.05);
      ++copies;
    }
  EXPECT_GT(copies, 0);
  // Removed from the catalogue, its windows stay in a graph index until compaction; they no
  // longer count against reference 0.
  world.store.refs[4].clear();
  const auto alone = matcher.match(q.data(), 30, 0.1, 0.97);
  ASSERT_FALSE(alone.empty());
  EXPECT_EQ(alone[0].reference, 0u);
  EXPECT_GT(alone[0].margin, 0.3);
}

}  // namespace
}  // namespace earmark
