#include "earmark/matching/peak_verifier.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "earmark/common/test_audio_test_util.h"
#include "earmark/index/segment.h"

namespace earmark {
namespace {

using testutil::TempDir;

// A reference of 60 s with 24 peaks per second, stored in a segment at global frame `kBase`.
constexpr uint32_t kBase = 7000;
constexpr uint32_t kFrames = 6000;

class PeakVerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tmp_.ok());
    std::mt19937 gen(5);
    std::uniform_int_distribution<uint32_t> frame(0, kFrames - 1);
    std::uniform_real_distribution<float> pitch(52.0f, 118.0f);
    for (int i = 0; i < 24 * 60; ++i) reference_.push_back({frame(gen), pitch(gen)});
    std::vector<ReferencePeak> stored;
    for (const auto& [f, p] : reference_) stored.push_back(ReferencePeak::at(kBase + f, p));
    std::vector<IndexEntry> no_landmarks;
    write_segment(tmp_ / "ref.emk", no_landmarks, stored, nlohmann::json::object(), 0);
    index_ = std::make_unique<Segment>(tmp_ / "ref.emk");
  }

  // A 10 s query: the share `kept` of the reference's peaks from `ref_frame` on, played at
  // `speed` and shifted by `shift` semitones, among 40 random peaks per second.
  std::vector<SpectralPeak> query(uint32_t ref_frame, double kept, double speed, float shift,
                                  uint32_t seed) const {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<SpectralPeak> q;
    for (const auto& [f, p] : reference_) {
      const double tq = (double(f) - ref_frame) / speed;
      if (tq < 0 || tq >= 1000 || u(gen) >= kept) continue;
      SpectralPeak s;
      s.frame = int32_t(std::lround(tq));
      s.pitch = p + shift;
      q.push_back(s);
    }
    std::uniform_int_distribution<int32_t> frame(0, 999);
    std::uniform_real_distribution<float> pitch(52.0f, 118.0f);
    for (int i = 0; i < 400; ++i) {
      SpectralPeak s;
      s.frame = frame(gen);
      s.pitch = pitch(gen);
      q.push_back(s);
    }
    return q;
  }

  // The landmark stage's view of an alignment of the whole query with the reference.
  LandmarkMatch alignment(double ref_frame, double speed, double shift) const {
    const LandmarkParams p;
    LandmarkMatch m;
    m.query_start = p.frame_time(0);
    m.query_end = p.frame_time(999);
    m.ref_start = p.frame_time(ref_frame);
    m.ref_end = p.frame_time(ref_frame + 999 * speed);
    m.speed = speed;
    m.pitch_shift = shift;
    return m;
  }

  PeakVerification verify(const std::vector<SpectralPeak>& q, const LandmarkMatch& m,
                          uint64_t base = kBase, uint32_t frames = kFrames) {
    PeakVerifier v(LandmarkParams().for_query(), *index_);
    v.add_query_peaks(q);
    return v.verify(m, base, frames);
  }

  TempDir tmp_;
  std::vector<std::pair<uint32_t, float>> reference_;
  std::unique_ptr<Segment> index_;
};

TEST_F(PeakVerifierTest, AFifthOfTheReferencePeaksUnderNoiseIsSignificant) {
  const auto q = query(2000, 0.2, 1.0, 0.0f, 1);
  // The landmark stage's line may be off by a few frames.
  const auto v = verify(q, alignment(2003, 1.0, 0.0));
  EXPECT_GT(v.reference_peaks, 200);
  EXPECT_GT(v.matched, 0.15 * v.reference_peaks);
  EXPECT_LT(v.chance, 0.1 * v.reference_peaks);
  EXPECT_GT(v.significance, 8.0);
}

TEST_F(PeakVerifierTest, FollowsSpeedAndPitch) {
  const auto q = query(3000, 0.3, 1.04, 1.5f, 2);
  EXPECT_GT(verify(q, alignment(3000, 1.04, 1.5)).significance, 8.0);
  // The same alignment without the pitch shift, or at the original speed, is not there.
  EXPECT_LT(verify(q, alignment(3000, 1.04, 0.0)).significance, 4.0);
  EXPECT_LT(verify(q, alignment(3000, 1.0, 1.5)).significance, 6.0);
}

TEST_F(PeakVerifierTest, WrongAlignmentsAndUnrelatedQueriesAreNot) {
  const auto q = query(2000, 0.3, 1.0, 0.0f, 3);
  EXPECT_LT(verify(q, alignment(2600, 1.0, 0.0)).significance, 4.0);
  // Only the random peaks: a query of something else.
  const auto other = query(2000, 0.0, 1.0, 0.0f, 4);
  EXPECT_LT(verify(other, alignment(2000, 1.0, 0.0)).significance, 4.0);
  // A short reference (1.5 s here) inside a longer query: its wrong alignments shift it along
  // the query, and the verdict holds both ways.
  const auto short_ref = query(2000, 0.5, 1.0, 0.0f, 5);
  EXPECT_GT(verify(short_ref, alignment(0, 1.0, 0.0), kBase + 2000, 150).significance, 7.0);
  EXPECT_LT(verify(other, alignment(0, 1.0, 0.0), kBase + 2000, 150).significance, 4.0);
  // No query peaks, or an alignment past the reference's end: nothing to compare.
  EXPECT_EQ(verify({}, alignment(2000, 1.0, 0.0)).significance, 0.0);
  EXPECT_EQ(verify(q, alignment(kFrames + 3000, 1.0, 0.0)).reference_peaks, 0);
}

}  // namespace
}  // namespace earmark
