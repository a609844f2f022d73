#include "earmark/decode/level_normaliser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace earmark {
namespace {

constexpr int kRate = 16000;
constexpr double kPi = 3.14159265358979323846;

std::vector<float> sine(double rms_db, double freq, double seconds, int rate = kRate) {
  const double amp = std::pow(10.0, rms_db / 20.0) * std::sqrt(2.0);
  std::vector<float> x(static_cast<size_t>(seconds * rate));
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = static_cast<float>(amp * std::sin(2.0 * kPi * freq * static_cast<double>(i) / rate));
  }
  return x;
}

double rms_db(const std::vector<float>& x, size_t begin, size_t end) {
  double sum = 0.0;
  for (size_t i = begin; i < end; ++i) sum += static_cast<double>(x[i]) * x[i];
  const double ms = sum / static_cast<double>(end - begin);
  return ms > 0.0 ? 10.0 * std::log10(ms) : -400.0;
}

// Runs the normaliser over `in`, fed in irregular chunks, and flushes.
std::vector<float> normalise(const std::vector<float>& in, const LevelNormaliserOptions& o = {}) {
  LevelNormaliser n(kRate, o);
  std::vector<float> out;
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> chunk(1, 5000);
  size_t pos = 0;
  while (pos < in.size()) {
    const size_t c = std::min(chunk(rng), in.size() - pos);
    n.process(in.data() + pos, c, out);
    EXPECT_LE(out.size(), pos + c);  // output never runs ahead of the input
    pos += c;
  }
  n.flush(out);
  return out;
}

TEST(LevelNormaliserTest, BringsQuietSineToTargetLevel) {
  const auto in = sine(-30.0, 440.0, 8.0);
  const auto out = normalise(in);
  ASSERT_EQ(out.size(), in.size());
  // Settled after ~3 s: within 1 dB of -20 dBFS.
  EXPECT_NEAR(rms_db(out, 3 * kRate, 8 * kRate), -20.0, 1.0);
  // The first window is seeded from the look-ahead, so the level is right almost at once.
  EXPECT_NEAR(rms_db(out, 0, kRate / 2), -20.0, 2.0);
}

TEST(LevelNormaliserTest, AttenuatesLoudSine) {
  const auto in = sine(-6.0, 1000.0, 6.0);
  const auto out = normalise(in);
  ASSERT_EQ(out.size(), in.size());
  EXPECT_NEAR(rms_db(out, 3 * kRate, 6 * kRate), -20.0, 1.0);
}

TEST(LevelNormaliserTest, LargeGainWithinLimits) {
  // -55 dBFS needs +35 dB: allowed (limit is +40 dB) and above the silence knee.
  const auto in = sine(-55.0, 300.0, 6.0);
  const auto out = normalise(in);
  EXPECT_NEAR(rms_db(out, 3 * kRate, 6 * kRate), -20.0, 1.0);
}

TEST(LevelNormaliserTest, AttenuationIsLimitedTo20dB) {
  // A +12 dBFS RMS (overrange) square needs -32 dB; only -20 dB is allowed: 4.0 -> 0.4.
  std::vector<float> in(4 * kRate);
  for (size_t i = 0; i < in.size(); ++i) in[i] = (i / 40) % 2 ? 4.0f : -4.0f;
  const auto out = normalise(in);
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = kRate; i < out.size(); ++i) ASSERT_NEAR(std::fabs(out[i]), 0.4f, 1e-3f) << i;
}

TEST(LevelNormaliserTest, SilenceStaysSilent) {
  std::vector<float> in(3 * kRate, 0.0f);
  const auto out = normalise(in);
  ASSERT_EQ(out.size(), in.size());
  for (float v : out) ASSERT_EQ(v, 0.0f);
}

TEST(LevelNormaliserTest, NearSilenceIsNotAmplified) {
  // Hiss at -80 dBFS RMS stays at -80 dBFS (no gain below -70 dBFS).
  std::mt19937 rng(1);
  std::normal_distribution<float> noise(0.0f, 1e-4f);
  std::vector<float> in(4 * kRate);
  for (auto& v : in) v = noise(rng);
  const auto out = normalise(in);
  ASSERT_EQ(out.size(), in.size());
  EXPECT_NEAR(rms_db(out, kRate, in.size()), rms_db(in, kRate, in.size()), 0.5);
}

TEST(LevelNormaliserTest, PreservesLengthAndTiming) {
  // A sine with a short click at a known position: the click must come out at the same index.
  auto in = sine(-30.0, 200.0, 3.0);
  const size_t click = 20000;
  in[click] = 0.5f;
  for (size_t len : {size_t{1}, size_t{100}, size_t{3199}, size_t{3200}, size_t{3201}, in.size()}) {
    std::vector<float> part(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(len));
    EXPECT_EQ(normalise(part).size(), len);
  }
  const auto out = normalise(in);
  ASSERT_EQ(out.size(), in.size());
  size_t argmax = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (std::fabs(out[i]) > std::fabs(out[argmax])) argmax = i;
  }
  EXPECT_EQ(argmax, click);
  // Away from the click, output is input times a slowly varying positive gain: same sign.
  for (size_t i = 1000; i < out.size(); i += 37) {
    if (std::fabs(in[i]) > 0.01f) {
      ASSERT_GT(in[i] * out[i], 0.0f) << i;
    }
  }
}

TEST(LevelNormaliserTest, OutputStaysInRangeForFullScaleSquare) {
  std::vector<float> in(3 * kRate);
  for (size_t i = 0; i < in.size(); ++i) in[i] = (i / 20) % 2 ? 1.0f : -1.0f;
  const auto out = normalise(in);
  ASSERT_EQ(out.size(), in.size());
  for (float v : out) {
    ASSERT_LE(v, 1.0f);
    ASSERT_GE(v, -1.0f);
  }
  EXPECT_NEAR(rms_db(out, kRate, out.size()), -20.0, 1.0);
}

TEST(LevelNormaliserTest, LoudOnsetAfterQuietPassageIsLimited) {
  // 4 s at -60 dBFS (gain ramps to +40 dB) then a full-scale square: the limiter must hold it
  // inside [-1, 1] and the gain must come down to the target within a few seconds.
  auto in = sine(-60.0, 500.0, 4.0);
  for (int i = 0; i < 5 * kRate; ++i) in.push_back((i / 16) % 2 ? 1.0f : -1.0f);
  const auto out = normalise(in);
  ASSERT_EQ(out.size(), in.size());
  for (float v : out) {
    ASSERT_TRUE(std::isfinite(v));
    ASSERT_LE(std::fabs(v), 1.0f);
  }
  EXPECT_NEAR(rms_db(out, 7 * kRate, 9 * kRate), -20.0, 1.5);
}

TEST(LevelNormaliserTest, NonFiniteInputIsSanitised) {
  auto in = sine(-20.0, 440.0, 1.0);
  in[100] = std::nanf("");
  in[200] = INFINITY;
  const auto out = normalise(in);
  ASSERT_EQ(out.size(), in.size());
  for (float v : out) ASSERT_TRUE(std::isfinite(v));
}

TEST(LevelNormaliserTest, ReusableAfterFlush) {
  LevelNormaliser n(kRate);
  const auto in = sine(-30.0, 440.0, 1.0);
  std::vector<float> a, b;
  n.process(in.data(), in.size(), a);
  n.flush(a);
  n.process(in.data(), in.size(), b);
  n.flush(b);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace earmark
