#include "earmark/training/training_pairs.h"

#include <gtest/gtest.h>

#include <cmath>

#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/features/kaldi_fbank.h"

namespace earmark {
namespace {

struct Banks {
  AudioBank music, noise, speech;
  Banks() {
    for (uint64_t s = 1; s <= 3; ++s)
      music.add("m" + std::to_string(s), testutil::synth_music(s, 6.0));
    noise.add("n", testutil::white_noise(5, 16000, 0.2));
    speech.add("s", testutil::synth_music(77, 3.0));
  }
};

AugmentationOptions none() {
  AugmentationOptions o;
  o.p_tempo_pitch = o.p_eq = o.p_reverb = o.p_noise = o.p_speech = o.p_gain_clip = o.p_codec = 0;
  o.max_offset_s = 0;
  return o;
}

double distance(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += std::abs(a[i] - b[i]);
  return d / a.size();
}

TEST(TrainingPairs, AnchorIsTheCleanWindowAndPairsAreSeeded) {
  Banks b;
  PairShape shape;
  PairGenerator gen(b.music, b.noise, b.speech, none(), shape);
  std::vector<float> a(shape.values()), p(shape.values());
  PairRecipe r;
  gen.make(1, 5, a.data(), p.data(), &r);
  EXPECT_EQ(a, p);  // nothing applied, no offset

  // The anchor is the fbank of the clip's window at the recipe's start.
  std::vector<float> clip(b.music.length(r.clip)), expect;
  b.music.read(r.clip, 0, clip.size(), clip.data());
  KaldiFbank fbank;
  expect = fbank.compute(clip.data() + r.start, shape.window_samples());
  ASSERT_EQ(expect.size(), a.size());
  EXPECT_LT(distance(a, expect), 1e-3);

  AugmentationOptions all;
  all.p_tempo_pitch = all.p_eq = all.p_reverb = all.p_noise = all.p_speech = all.p_codec = 1;
  all.p_gain_clip = 1;
  PairGenerator g1(b.music, b.noise, b.speech, all, shape),
      g2(b.music, b.noise, b.speech, all, shape);
  std::vector<float> a2(shape.values()), p2(shape.values());
  g1.make(3, 9, a.data(), p.data(), &r);
  g2.make(3, 9, a2.data(), p2.data());
  EXPECT_EQ(a, a2);
  EXPECT_EQ(p, p2);
  EXPECT_GT(distance(a, p), 0.05);  // degraded
  EXPECT_TRUE(r.eq && r.reverb && r.noise && r.speech && r.gain_clip && !r.codec.empty());
  g2.make(3, 10, a2.data(), p2.data());
  EXPECT_NE(a, a2);
}

TEST(TrainingPairs, TempoChangeKeepsTheWindowCentred) {
  // A positive made 6 % faster still covers the anchor's moment: it is closer to its own anchor
  // than to the windows 0.3 s either side.
  Banks b;
  PairShape shape;
  AugmentationOptions o = none();
  o.p_tempo_pitch = 1;
  o.max_tempo = 0.06;
  o.max_semitones = 0;
  PairGenerator gen(b.music, b.noise, b.speech, o, shape);
  std::vector<float> a(shape.values()), p(shape.values());
  int tested = 0;
  for (uint64_t i = 0; i < 12 && tested < 4; ++i) {
    PairRecipe r;
    gen.make(2, i, a.data(), p.data(), &r);
    if (std::abs(r.speed - 1) < 0.03) continue;
    ++tested;
    std::vector<float> clip(b.music.length(r.clip));
    b.music.read(r.clip, 0, clip.size(), clip.data());
    KaldiFbank fbank;
    for (int shift : {-4800, 4800}) {
      if (r.start + shift < 0 ||
          r.start + shift + int64_t(shape.window_samples()) > int64_t(clip.size()))
        continue;
      auto other = fbank.compute(clip.data() + r.start + shift, shape.window_samples());
      EXPECT_LT(distance(a, p), distance(other, p)) << "speed " << r.speed;
    }
  }
  EXPECT_GT(tested, 0);
}

TEST(TrainingPairs, CacheRoundTripsAndIsRebuiltForOtherPairs) {
  Banks b;
  testutil::TempDir dir;
  PairShape shape;
  const std::string path = dir / "pairs.bin";
  PairCache c1 =
      build_pair_cache(path, b.music, b.noise, b.speech, AugmentationOptions(), shape, 4, 6, 2);
  ASSERT_TRUE(testutil::file_exists(path));
  PairCache c2 =
      build_pair_cache(path, b.music, b.noise, b.speech, AugmentationOptions(), shape, 4, 6, 1);
  std::vector<float> x(shape.values()), y(shape.values()), a(shape.values()), p(shape.values());
  PairGenerator gen(b.music, b.noise, b.speech, AugmentationOptions(), shape);
  for (size_t i = 0; i < 6; ++i) {
    c1.positive(i, x.data());
    c2.positive(i, y.data());
    EXPECT_EQ(x, y);
    gen.make(4, i, a.data(), p.data());
    for (size_t k = 0; k < x.size(); ++k) ASSERT_NEAR(x[k], p[k], 0.0626f);  // 1/16 quantisation
  }
  // Another seed does not reuse the file.
  PairCache c3 =
      build_pair_cache(path, b.music, b.noise, b.speech, AugmentationOptions(), shape, 5, 6, 1);
  c3.positive(0, y.data());
  c1.positive(0, x.data());
  EXPECT_NE(x, y);
  EXPECT_NEAR(PairCache::dequantise(PairCache::quantise(kFbankLogFloor)), kFbankLogFloor, 0.0625);
  EXPECT_EQ(PairCache::quantise(1000.0f), 255);
}

TEST(TrainingPairs, RejectsBadOptions) {
  Banks b;
  AugmentationOptions o;
  o.p_noise = 1.5;
  EXPECT_THROW(PairGenerator(b.music, b.noise, b.speech, o, PairShape()), Error);
  o = AugmentationOptions();
  o.min_snr_db = 20;
  o.max_snr_db = 10;
  EXPECT_THROW(o.validate(), Error);
  AudioBank empty;
  EXPECT_THROW(PairGenerator(empty, b.noise, b.speech, AugmentationOptions(), PairShape()), Error);
}

}  // namespace
}  // namespace earmark
