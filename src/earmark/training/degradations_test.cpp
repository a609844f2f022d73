#include "earmark/training/degradations.h"

#include <gtest/gtest.h>

#include <cmath>

#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/training/codec_round_trip.h"
#include "earmark/training/time_pitch.h"

namespace earmark {
namespace {

using testutil::kPi;
using testutil::kRate;

std::vector<float> sine(double hz, double seconds, double amplitude = 0.5) {
  std::vector<float> x(size_t(seconds * kRate));
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(amplitude * std::sin(2 * kPi * hz * i / kRate));
  return x;
}

double db(double power_ratio) { return 10 * std::log10(power_ratio); }

// Normalised cross-correlation of a and b shifted by lag (b[i + lag] against a[i]).
double correlation(const std::vector<float>& a, const std::vector<float>& b, int lag) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const int64_t j = int64_t(i) + lag;
    if (j < 0 || j >= int64_t(b.size())) continue;
    ab += double(a[i]) * b[size_t(j)];
    aa += double(a[i]) * a[i];
    bb += double(b[size_t(j)]) * b[size_t(j)];
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0;
}

// Frequency of the strongest component, by a scan of single-bin DFTs around a guess.
double dominant_hz(const std::vector<float>& x, double from, double to) {
  double best = from, best_power = -1;
  for (double f = from; f <= to; f += 0.5) {
    double re = 0, im = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      re += x[i] * std::cos(2 * kPi * f * i / kRate);
      im += x[i] * std::sin(2 * kPi * f * i / kRate);
    }
    if (re * re + im * im > best_power) {
      best_power = re * re + im * im;
      best = f;
    }
  }
  return best;
}

TEST(Degradations, MixesAtTheAskedSnr) {
  const std::vector<float> music = testutil::synth_music(3, 2.0);
  const std::vector<float> noise = testutil::white_noise(4, 5000, 0.3);  // shorter: looped
  for (double snr : {-5.0, 0.0, 10.0}) {
    std::vector<float> mixed = music;
    mix_at_snr(mixed, noise, snr, 123);
    std::vector<float> added(music.size());
    for (size_t i = 0; i < music.size(); ++i) added[i] = mixed[i] - music[i];
    EXPECT_NEAR(db(mean_power(music.data(), music.size()) / mean_power(added.data(), added.size())),
                snr, 0.01);
    EXPECT_NEAR(added[0] / noise[123], added[1] / noise[124], 1e-3);  // starts at the offset
  }
  std::vector<float> silent(100, 0.0f);
  mix_at_snr(silent, noise, 0);
  EXPECT_EQ(mean_power(silent.data(), silent.size()), 0.0);
}

TEST(Degradations, GainClips) {
  std::vector<float> x = sine(440, 0.1, 0.5);
  apply_gain_and_clip(x, 12);
  float peak = 0;
  for (float v : x) peak = std::max(peak, std::abs(v));
  EXPECT_EQ(peak, 1.0f);
  EXPECT_GT(mean_power(x.data(), x.size()), 0.7);  // mostly square now
}

TEST(Degradations, FiltersShapeTheSpectrum) {
  auto gain_db = [](const Biquad& f, double hz) {
    std::vector<float> x = sine(hz, 0.5);
    const double before = mean_power(x.data() + 4000, x.size() - 4000);
    f.apply(x);
    return db(mean_power(x.data() + 4000, x.size() - 4000) / before);
  };
  EXPECT_NEAR(gain_db(Biquad::lowpass(2000, 0.707, kRate), 300), 0.0, 0.5);
  EXPECT_LT(gain_db(Biquad::lowpass(2000, 0.707, kRate), 7000), -20.0);
  EXPECT_LT(gain_db(Biquad::highpass(500, 0.707, kRate), 60), -30.0);
  EXPECT_NEAR(gain_db(Biquad::highpass(500, 0.707, kRate), 5000), 0.0, 0.5);
  EXPECT_NEAR(gain_db(Biquad::peaking(1000, 1.0, 9.0, kRate), 1000), 9.0, 0.3);
  EXPECT_NEAR(gain_db(Biquad::low_shelf(200, -10.0, kRate), 40), -10.0, 0.6);
  EXPECT_NEAR(gain_db(Biquad::high_shelf(3000, 6.0, kRate), 7000), 6.0, 0.6);
}

TEST(Degradations, ReverbKeepsAlignmentAndAddsATail) {
  std::vector<float> click(kRate, 0.0f);
  click[1000] = 1.0f;
  std::vector<float> wet = click;
  apply_reverb(wet, 0.5, 1.0, 9);
  ASSERT_EQ(wet.size(), click.size());
  EXPECT_NEAR(wet[1000], 1.0f, 1e-4);  // direct sound unchanged and in place
  double early = 0, late = 0;
  for (int i = 1100; i < 2600; ++i) early += double(wet[i]) * wet[i];
  for (int i = 1000 + 8000 - 1500; i < 1000 + 8000; ++i) late += double(wet[i]) * wet[i];
  EXPECT_GT(early, 0.0);
  // 0.5 s RT60: 0.4 s later the tail is ~48 dB down (decay of 60 dB per RT60).
  EXPECT_NEAR(db(late / early), -60.0 * (8000 - 1500 - 100) / 8000.0, 6.0);
  std::vector<float> again = click;
  apply_reverb(again, 0.5, 1.0, 9);
  EXPECT_EQ(again, wet);  // seeded
}

TEST(Degradations, CodecRoundTripsStayAligned) {
  const std::vector<float> music = testutil::synth_music(11, 3.0);
  struct Case {
    Codec codec;
    int bitrate;
  };
  for (Case c : {Case{Codec::kMp3, 32000}, Case{Codec::kMp3, 64000}, Case{Codec::kAac, 48000},
                 Case{Codec::kOpus, 16000}, Case{Codec::kOpus, 32000}}) {
    SCOPED_TRACE(std::string(codec_name(c.codec)) + " " + std::to_string(c.bitrate));
    const std::vector<float> out = codec_round_trip(music, c.codec, c.bitrate);
    ASSERT_EQ(out.size(), music.size());
    const double at0 = correlation(music, out, 0);
    EXPECT_GT(at0, 0.6);
    // The delay is removed to within a sample or two: shifted copies fit worse.
    for (int lag : {-24, -8, 8, 24}) EXPECT_GT(at0, correlation(music, out, lag)) << lag;
    EXPECT_NE(out, music);
  }
  EXPECT_THROW(codec_round_trip(music, Codec::kMp3, 100), Error);
  EXPECT_TRUE(codec_round_trip({}, Codec::kAac, 48000).empty());
}

TEST(Degradations, TempoAndPitch) {
  const std::vector<float> tone = sine(440, 2.0);
  const std::vector<float> faster = change_tempo_and_pitch(tone, 1.05, 0);
  EXPECT_NEAR(double(faster.size()), tone.size() / 1.05, tone.size() * 0.01);
  EXPECT_NEAR(
      dominant_hz(std::vector<float>(faster.begin() + 4000, faster.begin() + 12000), 400, 480),
      440.0, 4.4);  // within 1 %
  const std::vector<float> higher = change_tempo_and_pitch(tone, 1.0, 2.0);
  EXPECT_NEAR(double(higher.size()), double(tone.size()), tone.size() * 0.01);
  EXPECT_NEAR(
      dominant_hz(std::vector<float>(higher.begin() + 4000, higher.begin() + 12000), 460, 520),
      440.0 * std::pow(2.0, 2.0 / 12), 4.9);
  EXPECT_THROW(change_tempo_and_pitch(tone, 3.0, 0), Error);
  EXPECT_THROW(change_tempo_and_pitch(tone, 1.0, 20), Error);
}

}  // namespace
}  // namespace earmark
