// Sound-logo constellations: the chance model of the score, and the matcher that finds a logo by
// its peaks under louder programme material, across block edges, and only where it is.
#include "earmark/matching/logo_peak_matcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/landmarks/landmark_spectrogram.h"
#include "earmark/landmarks/peak_picker.h"

namespace earmark {
namespace {

using testutil::kRate;
using testutil::mix_logo;
using testutil::rms;
using testutil::synth_music;

using testutil::chime;

// The query's peaks as the scanner picks them (query density), fed to the matcher in the
// picker's own chunks.
std::vector<LogoPeakDetection> detect(const std::vector<const LogoTemplate*>& logos,
                                      const std::vector<float>& query, LogoPeakOptions options = {},
                                      size_t chunk = 4000) {
  const LandmarkParams params = LandmarkParams().for_query();
  LogoPeakMatcher matcher(logos, options);
  const auto range = LandmarkSpectrogram::bin_range(params);
  PeakPicker picker(
      params, range.first, range.count,
      [&](const std::vector<SpectralPeak>& p, int watermark) { matcher.push_peaks(p, watermark); });
  LandmarkSpectrogram frames(params, [&](int f, const float* v) { picker.push_frame(f, v); });
  for (size_t i = 0; i < query.size(); i += chunk)
    frames.push(query.data() + i, std::min(chunk, query.size() - i));
  frames.finish();
  picker.finish();
  matcher.finish();
  return matcher.detections();
}

double frame_seconds() { return LandmarkParams().frame_seconds(); }

TEST(LogoPeakMatcher, SurpriseIsThePoissonTail) {
  // P(X >= 1 | 1) = 1 - 1/e; P(X >= 5 | 0.5) = 1.7212e-4; P(X >= 20 | 2) = 6.44373e-14.
  EXPECT_NEAR(LogoPeakMatcher::poisson_surprise(1, 1.0), -std::log10(1 - std::exp(-1.0)), 0.2);
  EXPECT_NEAR(LogoPeakMatcher::poisson_surprise(5, 0.5), -std::log10(1.7212e-4), 1e-3);
  EXPECT_NEAR(LogoPeakMatcher::poisson_surprise(20, 2.0), -std::log10(6.44373e-14), 1e-4);
  // At or below the mean there is no surprise; more votes always surprise more.
  EXPECT_EQ(LogoPeakMatcher::poisson_surprise(2, 3.0), 0.0);
  EXPECT_EQ(LogoPeakMatcher::poisson_surprise(0, 0.1), 0.0);
  double last = 0;
  for (int k = 4; k < 60; ++k) {
    const double s = LogoPeakMatcher::poisson_surprise(k, 1.5);
    EXPECT_GT(s, last);
    last = s;
  }
}

TEST(LogoPeakMatcher, FindsALogoBelowTheMusicAndNothingWithoutIt) {
  LandmarkParams params;
  const auto logo = chime(7);
  auto t = LogoTemplate::build(params, logo.data(), logo.size());
  ASSERT_TRUE(t.has_value());
  const auto background = synth_music(4101, 10.0);
  // 3 dB below the programme.
  const auto with = mix_logo(background, logo, {3.3}, -3.0);
  auto found = detect({&*t}, with);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NEAR(found[0].frame * frame_seconds(), 3.3, 0.02);
  EXPECT_GE(found[0].score, LogoPeakOptions().min_score);
  EXPECT_GT(found[0].votes, int(t->peaks().size()) / 4);

  // The same programme without the logo, and with another melody of the same timbre instead.
  const double gain = rms(with) / std::max(1e-9, rms(background));
  std::vector<float> without(background.size());
  for (size_t i = 0; i < background.size(); ++i) without[i] = float(background[i] * gain);
  EXPECT_TRUE(detect({&*t}, without).empty());
  EXPECT_TRUE(detect({&*t}, mix_logo(background, chime(8), {3.3}, -3.0)).empty());
}

TEST(LogoPeakMatcher, StreamsAcrossBlockEdgesAndReportsEachOccurrence) {
  LandmarkParams params;
  const auto logo = chime(7);
  auto t = LogoTemplate::build(params, logo.data(), logo.size());
  ASSERT_TRUE(t.has_value());
  // 25 s: one occurrence straddles the first block edge (10 s), another is in the third block,
  // a third is cut off by the start of the query.
  auto query = mix_logo(synth_music(4102, 25.0), logo, {9.7, 20.0}, 0.0);
  const auto tail = mix_logo(synth_music(4103, 4.0), logo, {0.0}, 0.0);
  std::vector<float> cut(tail.begin() + kRate / 2, tail.end());
  cut.insert(cut.end(), query.begin(), query.end());
  auto found = detect({&*t}, cut);
  ASSERT_EQ(found.size(), 3u);
  EXPECT_NEAR(found[0].frame * frame_seconds(), -0.5, 0.02);
  EXPECT_NEAR(found[1].frame * frame_seconds(), 3.5 + 9.7, 0.02);
  EXPECT_NEAR(found[2].frame * frame_seconds(), 3.5 + 20.0, 0.02);
  // The chunking of the audio and the block length change nothing but the chance estimate.
  LogoPeakOptions one_block;
  one_block.block_frames = 5000;
  auto whole = detect({&*t}, cut, one_block, cut.size());
  ASSERT_EQ(whole.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(whole[i].frame, found[i].frame, 1);
}

TEST(LogoPeakMatcher, RejectsAbsurdOptionsAndHoldsNothingInEmptyQueries) {
  LandmarkParams params;
  const auto logo = chime(7);
  auto t = LogoTemplate::build(params, logo.data(), logo.size());
  ASSERT_TRUE(t.has_value());
  LogoPeakOptions bad;
  bad.block_frames = 0;
  EXPECT_THROW(LogoPeakMatcher({&*t}, bad), Error);
  bad = LogoPeakOptions();
  bad.frame_tolerance = -1;
  EXPECT_THROW(LogoPeakMatcher({&*t}, bad), Error);
  // A query shorter than the logo, or silent, holds nothing and is not an error.
  std::vector<float> short_query(kRate / 2, 0.0f);
  EXPECT_TRUE(detect({&*t}, short_query).empty());
  EXPECT_TRUE(detect({&*t}, std::vector<float>()).empty());
  EXPECT_TRUE(detect({}, logo).empty());
}

}  // namespace
}  // namespace earmark
