// Sound-logo templates: what they keep, their stored form, and the dense matcher that finds them
// under louder programme material, across block edges and only where they are.
#include "earmark/matching/logo_matcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "earmark/common/checksum.h"
#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/matching/logo_template.h"

namespace earmark {
namespace {

using testutil::mix_logo;
using testutil::notification_sound;
using testutil::rms;
using testutil::synth_music;

using testutil::kRate;

using testutil::chime;

std::vector<LogoDetection> detect(const std::vector<const LogoTemplate*>& logos,
                                  const std::vector<float>& query, LogoMatchOptions options = {},
                                  size_t chunk = 4000) {
  LandmarkParams params;
  std::unique_ptr<LogoMatcher> matcher;
  ContrastSpectrogram spectrogram(
      params, [&](int, const float*, const float* contrast) { matcher->push_step(contrast); });
  matcher = std::make_unique<LogoMatcher>(logos, spectrogram.num_bands(), options);
  LandmarkSpectrogram frames(params, [&](int, const float* v) { spectrogram.push_frame(v); });
  for (size_t i = 0; i < query.size(); i += chunk)
    frames.push(query.data() + i, std::min(chunk, query.size() - i));
  frames.finish();
  spectrogram.finish();
  matcher->finish();
  return matcher->detections();
}

double step_seconds() { return LandmarkParams().frame_seconds() * kLogoFramesPerStep; }

TEST(LogoTemplate, KeepsTheLoudCellsOfTheLogoOnly) {
  LandmarkParams params;
  const auto logo = notification_sound();
  auto t = LogoTemplate::build(params, logo.data(), logo.size());
  ASSERT_TRUE(t.has_value());
  // One second: 95 frames start inside it (64 ms frames, 10 ms hop), pooled in pairs.
  EXPECT_EQ(t->steps(), 48);
  // Three harmonic notes: a small share of the time-frequency plane, not all of it.
  const double share = double(t->cells().size()) / (t->steps() * t->num_bands());
  EXPECT_GT(share, 0.02);
  EXPECT_LT(share, 0.6);
  double sum = 0;
  for (const LogoCell& c : t->cells()) sum += c.value;
  EXPECT_NEAR(sum / t->cells().size(), 0.0, 1e-3) << "template values are centred";

  // Its constellation: peaks inside the logo's time span and the landmark stage's band.
  ASSERT_GE(t->peaks().size(), 6u);
  for (const LogoPeak& p : t->peaks()) {
    EXPECT_GE(p.frame, -1.0f);
    EXPECT_LE(p.frame, t->steps() * kLogoFramesPerStep + 1.0f);
    EXPECT_GT(p.bin * params.sample_rate / params.fft_size, params.min_hz - 20);
    EXPECT_LT(p.bin * params.sample_rate / params.fft_size, params.max_hz + 20);
  }

  std::vector<float> silence(kRate, 0.0f);
  EXPECT_FALSE(LogoTemplate::build(params, silence.data(), silence.size()).has_value());
}

TEST(LogoTemplate, StoredFormRoundTripsAndRejectsDamage) {
  LandmarkParams params;
  const auto logo = notification_sound();
  auto t = LogoTemplate::build(params, logo.data(), logo.size());
  ASSERT_TRUE(t.has_value());
  const std::string blob = t->serialise();
  LogoTemplate back = LogoTemplate::parse(blob);
  EXPECT_EQ(back.steps(), t->steps());
  EXPECT_EQ(back.num_bands(), t->num_bands());
  ASSERT_EQ(back.cells().size(), t->cells().size());
  EXPECT_DOUBLE_EQ(back.energy(), t->energy());
  for (size_t i = 0; i < back.cells().size(); ++i) {
    EXPECT_EQ(back.cells()[i].step, t->cells()[i].step);
    EXPECT_EQ(back.cells()[i].band, t->cells()[i].band);
    EXPECT_EQ(back.cells()[i].value, t->cells()[i].value);
  }
  ASSERT_EQ(back.peaks().size(), t->peaks().size());
  for (size_t i = 0; i < back.peaks().size(); ++i) {
    EXPECT_EQ(back.peaks()[i].frame, t->peaks()[i].frame);
    EXPECT_EQ(back.peaks()[i].bin, t->peaks()[i].bin);
  }
  // A version 1 template (stored before constellations were kept) still reads, without peaks.
  {
    const size_t cells_end = 40 + t->cells().size() * 8;
    std::string v1 = blob.substr(0, cells_end);
    v1[8] = 1;
    const uint64_t sum = fnv1a(kFnvSeed, v1.data() + 40, v1.size() - 40);
    std::memcpy(&v1[32], &sum, 8);
    LogoTemplate old = LogoTemplate::parse(v1);
    EXPECT_EQ(old.cells().size(), t->cells().size());
    EXPECT_TRUE(old.peaks().empty());
  }
  std::string flipped = blob;
  flipped[blob.size() - 3] ^= 0x10;
  EXPECT_THROW(LogoTemplate::parse(flipped), Error);
  EXPECT_THROW(LogoTemplate::parse(blob.substr(0, blob.size() - 8)), Error);
  EXPECT_THROW(LogoTemplate::parse(blob.substr(0, 20)), Error);
  EXPECT_THROW(LogoTemplate::parse("not a template at all, but long enough to have a header"),
               Error);
  std::string other_version = blob;
  other_version[8] = 9;
  try {
    LogoTemplate::parse(other_version);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("re-index"), std::string::npos) << e.what();
  }
}

TEST(LogoMatcher, FindsALogoAtEqualLevelUnderMusicAndNothingWithoutIt) {
  LandmarkParams params;
  const auto logo = chime(7);
  auto t = LogoTemplate::build(params, logo.data(), logo.size());
  ASSERT_TRUE(t.has_value());
  const auto background = synth_music(4101, 10.0);
  const auto with = mix_logo(background, logo, {3.3}, 0.0);
  auto found = detect({&*t}, with);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NEAR(found[0].step * step_seconds(), 3.3, 0.05);
  EXPECT_EQ(found[0].steps, t->steps());
  EXPECT_GT(found[0].correlation, 0.5);

  // The same programme without the logo, and with another melody of the same timbre instead.
  const double gain = rms(with) / std::max(1e-9, rms(background));
  std::vector<float> without(background.size());
  for (size_t i = 0; i < background.size(); ++i) without[i] = float(background[i] * gain);
  EXPECT_TRUE(detect({&*t}, without).empty());
  const auto other = mix_logo(background, chime(8), {3.3}, 0.0);
  EXPECT_TRUE(detect({&*t}, other).empty());
}

TEST(LogoMatcher, StreamsAcrossBlockEdgesAndReportsEachOccurrence) {
  LandmarkParams params;
  const auto logo = chime(7);
  auto t = LogoTemplate::build(params, logo.data(), logo.size());
  ASSERT_TRUE(t.has_value());
  // 25 s: one occurrence straddles the first block edge (10 s), another is in the third block.
  const auto query = mix_logo(synth_music(4102, 25.0), logo, {9.7, 20.0}, 6.0);
  auto found = detect({&*t}, query);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_NEAR(found[0].step * step_seconds(), 9.7, 0.05);
  EXPECT_NEAR(found[1].step * step_seconds(), 20.0, 0.05);
  // The chunking of the audio and the block length change nothing but the chance estimate (and
  // rounding, which may move a peak that lies between two steps by one).
  LogoMatchOptions one_block;
  one_block.block_steps = 5000;
  auto whole = detect({&*t}, query, one_block, 16000 * 25);
  ASSERT_EQ(whole.size(), 2u);
  EXPECT_NEAR(whole[0].step, found[0].step, 1);
  EXPECT_NEAR(whole[1].step, found[1].step, 1);
}

TEST(LogoMatcher, RejectsMismatchedGeometryAndAbsurdOptions) {
  LandmarkParams params;
  const auto logo = notification_sound();
  auto t = LogoTemplate::build(params, logo.data(), logo.size());
  ASSERT_TRUE(t.has_value());
  EXPECT_THROW(LogoMatcher({&*t}, t->num_bands() + 1), Error);
  LogoMatchOptions bad;
  bad.block_steps = 0;
  EXPECT_THROW(LogoMatcher({&*t}, t->num_bands(), bad), Error);
  // A query shorter than the logo cannot hold it, and is not an error.
  std::vector<float> short_query(kRate / 2, 0.1f);
  EXPECT_TRUE(detect({&*t}, short_query).empty());
}

}  // namespace
}  // namespace earmark
