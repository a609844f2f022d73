#include "earmark/matching/landmark_matcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include "earmark/common/test_audio_test_util.h"
#include "earmark/index/segment.h"

namespace earmark {
namespace {

using testutil::TempDir;

// A catalogue and a query built hit by hit: every query triplet has a shape of its own (no two
// share a probe key), and the index holds, under each shape's key, exactly the postings the test
// wants that triplet to hit.
class MatcherScene {
 public:
  MatcherScene() : params_(LandmarkParams().for_query()), quantizer_(params_), gen_(17) {}

  // A query triplet at frame `tq` whose hits are the global frames `gs`.
  void add(int32_t tq, const std::vector<uint32_t>& gs) {
    TripletDescriptor d = new_shape();
    d.frame = tq;
    query_.push_back(d);
    for (uint32_t g : gs)
      entries_.push_back({quantizer_.key(d), g, TripletQuantizer::pitch_code(d.pitch)});
  }

  std::vector<LandmarkMatch> match(const std::string& dir, const ReferenceTimeline& timeline,
                                   const MatchOptions& options) {
    auto entries = entries_;
    write_segment(dir + "/scene.emk", entries, nlohmann::json::object(), 0);
    Segment index(dir + "/scene.emk");
    LandmarkMatcher matcher(params_, index, timeline, options);
    auto query = query_;
    std::stable_sort(
        query.begin(), query.end(),
        [](const TripletDescriptor& a, const TripletDescriptor& b) { return a.frame < b.frame; });
    for (const TripletDescriptor& d : query) matcher.add(d);
    matcher.finish();
    return matcher.matches();
  }

  const LandmarkParams& params() const { return params_; }

 private:
  TripletDescriptor new_shape() {
    std::uniform_real_distribution<float> ratio(0.05f, 0.95f), df(-15.0f, 15.0f), span(5.0f, 55.0f);
    for (;;) {
      TripletDescriptor d;
      d.pitch = 70.0f;
      d.ratio = ratio(gen_);
      d.d1 = df(gen_);
      d.d2 = df(gen_);
      d.span = span(gen_);
      std::vector<uint32_t> keys;
      quantizer_.probe_keys(d, keys);
      bool fresh = true;
      for (uint32_t k : keys) fresh &= !probed_.count(k);
      if (!fresh) continue;
      probed_.insert(keys.begin(), keys.end());
      return d;
    }
  }

  LandmarkParams params_;
  TripletQuantizer quantizer_;
  std::mt19937 gen_;
  std::set<uint32_t> probed_;
  std::vector<TripletDescriptor> query_;
  std::vector<IndexEntry> entries_;
};

// Dense music around a noisy query: four chance alignments, each a small consistent core among
// many scattered hits, fill the coarse offset histogram; the true alignment is twelve landmarks
// exactly in line and nothing around them. The coarse candidates are the chance alignments, they
// confirm, and they use up the window's matches; the fine offset histogram still sees the spike.
TEST(LandmarkMatcherTest, FineCandidatesFindAThinAlignmentAmongDenseChanceHits) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  MatcherScene scene;
  ReferenceTimeline timeline;
  timeline.add(0, 20000, 0);      // the reference in the query
  timeline.add(21000, 20000, 1);  // dense music it is not
  const uint32_t true_offset = 5000;
  for (int i = 0; i < 12; ++i) {
    const int32_t tq = 40 + 75 * i;
    scene.add(tq, {uint32_t(tq) + true_offset});
  }
  std::mt19937 gen(3);
  std::uniform_int_distribution<int> scatter(11, 150), sign(0, 1);
  for (int j = 0; j < 4; ++j) {
    const uint32_t offset = 24000 + 2500 * j;
    for (int m = 0; m < 10; ++m) scene.add(20 + 90 * m, {uint32_t(20 + 90 * m) + offset});
    for (int m = 0; m < 60; ++m) {
      const int r = scatter(gen) * (sign(gen) ? 1 : -1);
      scene.add(10 + 15 * m, {uint32_t(int(10 + 15 * m) + int(offset) + r)});
    }
  }

  MatchOptions coarse_only;
  coarse_only.fine_candidates = 0;
  auto without = scene.match(tmp.path(), timeline, coarse_only);
  ASSERT_FALSE(without.empty()) << "the chance alignments should confirm";
  for (const LandmarkMatch& m : without) EXPECT_NE(m.ref, 0u) << "found without fine candidates";

  auto with = scene.match(tmp.path(), timeline, MatchOptions());
  ASSERT_FALSE(with.empty());
  const LandmarkMatch& best = with.front();
  EXPECT_EQ(best.ref, 0u);
  EXPECT_EQ(best.landmarks, 12);
  EXPECT_EQ(best.background, 0);
  EXPECT_NEAR(best.speed, 1.0, 0.005);
  EXPECT_NEAR(best.ref_start - best.query_start, true_offset * scene.params().frame_seconds(),
              0.03);
  for (size_t i = 1; i < with.size(); ++i) EXPECT_LT(with[i].score, best.score);
}

// Many triplets of one anchor pair are one coincidence of two chords, not many: a match made of
// few anchors with many repeats must not outscore one of more anchors.
TEST(LandmarkMatcherTest, RepeatsOfOneAnchorPairCountBoundedly) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  MatcherScene scene;
  ReferenceTimeline timeline;
  timeline.add(0, 20000, 0);
  timeline.add(21000, 20000, 1);
  // Reference 0: 10 anchors in line, one triplet each.
  for (int i = 0; i < 10; ++i) scene.add(30 + 90 * i, {uint32_t(30 + 90 * i) + 3000});
  // Reference 1: 5 anchors in line with 12 triplets each (60 landmarks).
  for (int i = 0; i < 5; ++i)
    for (int k = 0; k < 12; ++k) scene.add(50 + 170 * i, {uint32_t(50 + 170 * i) + 30000});
  auto matches = scene.match(tmp.path(), timeline, MatchOptions());
  ASSERT_EQ(matches.size(), 2u);
  EXPECT_EQ(matches[0].ref, 0u);
  EXPECT_EQ(matches[1].ref, 1u);
  EXPECT_EQ(matches[1].landmarks, 60);
  EXPECT_EQ(matches[1].anchors, 5);
  // Repeats count up to twice the anchors, a quarter each.
  EXPECT_DOUBLE_EQ(matches[1].score, 5 + 0.25 * 10);
  EXPECT_DOUBLE_EQ(matches[0].score, 10.0);
}

}  // namespace
}  // namespace earmark
