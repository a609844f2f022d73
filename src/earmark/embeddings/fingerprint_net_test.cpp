#include "earmark/embeddings/fingerprint_net.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "earmark/common/error.h"
#include "earmark/common/safetensors.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/embeddings/fingerprint_net_module.h"
#include "earmark/embeddings/window_embedder.h"
#include "earmark/training/codec_round_trip.h"

namespace earmark {
namespace {

FingerprintNetConfig small() {
  FingerprintNetConfig c;
  c.channels = {8, 16, 16};
  c.dim = 32;
  return c;
}

std::vector<float> random_windows(size_t n, const FingerprintNetConfig& c, uint64_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(-5.0f, 3.0f);
  std::vector<float> x(n * c.window_frames * c.mel_bins);
  for (float& v : x) v = d(rng);
  return x;
}

TEST(FingerprintNet, EmbedsUnitVectorsIndependentOfBatchAndLevel) {
  auto net = random_fingerprint_net(small(), 3);
  ASSERT_EQ(net->dim(), 32);
  const size_t values = 96 * 128;
  std::vector<float> x = random_windows(5, small(), 1), batch(5 * 32), one(32);
  net->embed(x.data(), 5, batch.data());
  for (size_t i = 0; i < 5; ++i) {
    double norm = 0;
    for (int k = 0; k < 32; ++k) norm += batch[i * 32 + k] * batch[i * 32 + k];
    EXPECT_NEAR(norm, 1.0, 1e-5);
    net->embed(x.data() + i * values, 1, one.data());
    for (int k = 0; k < 32; ++k) EXPECT_NEAR(one[k], batch[i * 32 + k], 1e-5);
  }
  // A level change is a constant added to the log-mel: the window normalisation removes it.
  std::vector<float> louder(x.begin(), x.begin() + values), moved(32);
  for (float& v : louder) v += 2.3f;
  net->embed(louder.data(), 1, moved.data());
  for (int k = 0; k < 32; ++k) EXPECT_NEAR(moved[k], batch[k], 1e-4);
}

TEST(FingerprintNet, WeightsRoundTripThroughSafetensors) {
  testutil::TempDir dir;
  torch::manual_seed(5);
  FingerprintNet net(small());
  net->eval();
  const std::string path = dir / "w.safetensors";
  save_fingerprint_net(net, path, {{"name", "tiny"}});
  auto loaded = load_fingerprint_net(path, 1);
  EXPECT_EQ(loaded->name(), "tiny");
  EXPECT_EQ(loaded->window_frames(), 96);
  std::vector<float> x = random_windows(3, small(), 2), got(3 * 32);
  loaded->embed(x.data(), 3, got.data());
  std::vector<float> norm(x.size());
  for (int i = 0; i < 3; ++i)
    normalise_fingerprint_window(x.data() + i * 96 * 128, 96 * 128, norm.data() + i * 96 * 128);
  torch::NoGradGuard g;
  torch::Tensor want = net->forward(torch::from_blob(norm.data(), {3, 96, 128}));
  for (int i = 0; i < 3 * 32; ++i) EXPECT_NEAR(got[i], want.data_ptr<float>()[i], 1e-6);
}

TEST(FingerprintNet, RefusesBadFilesAndConfigs) {
  testutil::TempDir dir;
  EXPECT_THROW(load_fingerprint_net(dir / "missing.safetensors"), Error);
  testutil::write_file(dir / "junk.safetensors", "not a weight file at all");
  EXPECT_THROW(load_fingerprint_net(dir / "junk.safetensors"), Error);

  // A weight file of another shape than its config says.
  torch::manual_seed(1);
  FingerprintNet net(small());
  FingerprintNetConfig other = small();
  other.dim = 64;
  FingerprintNet wide(other);
  save_fingerprint_net(wide, dir / "wide.safetensors");
  SafetensorsFile f(dir / "wide.safetensors");
  EXPECT_THROW(load_fingerprint_state(net, f), Error);

  // Valid safetensors without the network's metadata.
  const float v = 1;
  write_safetensors(dir / "plain.safetensors", {{"x", "F32", {1}, &v, 4}});
  EXPECT_THROW(load_fingerprint_net(dir / "plain.safetensors"), Error);

  FingerprintNetConfig c = small();
  c.window_frames = 100;  // not a multiple of 2^3
  EXPECT_THROW(c.validate(), Error);
  c = small();
  c.channels = {};
  EXPECT_THROW(c.validate(), Error);
  c = small();
  c.dim = 1;
  EXPECT_THROW(c.validate(), Error);
  EXPECT_EQ(FingerprintNetConfig::from_json(small().to_json()).to_json(), small().to_json());
}

// The shipped weights: a degraded moment of a recording (noise at 5 dB, then mp3 at 32 kbit/s)
// still lands nearest its own clean window among all the recording's windows 0.5 s apart.
TEST(FingerprintNet, ShippedWeightsTellMomentsApart) {
  auto net = load_fingerprint_net(default_fingerprint_weights(), 1);
  EXPECT_EQ(net->dim(), 128);
  const std::vector<float> music = testutil::synth_music(21, 30.0);
  WindowEmbedder clean(*net, 50);
  clean.consume(music.data(), music.size());
  clean.finish();
  const std::vector<float> degraded =
      codec_round_trip(testutil::add_noise(music, 5.0, 3), Codec::kMp3, 32000);
  WindowEmbedder query(*net, 50);
  query.consume(degraded.data(), degraded.size());
  query.finish();
  ASSERT_EQ(query.windows(), clean.windows());
  size_t right = 0;
  for (size_t i = 0; i < query.windows(); ++i) {
    size_t best = 0;
    float best_dot = -2;
    for (size_t j = 0; j < clean.windows(); ++j) {
      float dot = 0;
      for (int k = 0; k < 128; ++k)
        dot += query.vectors()[i * 128 + k] * clean.vectors()[j * 128 + k];
      if (dot > best_dot) {
        best_dot = dot;
        best = j;
      }
    }
    right += best == i;
  }
  EXPECT_GE(double(right) / query.windows(), 0.9) << right << " of " << query.windows();
}

TEST(FingerprintNetConfig, ParsesChannelLists) {
  EXPECT_EQ(FingerprintNetConfig::parse_channels("24,48,96"), (std::vector<int>{24, 48, 96}));
  EXPECT_EQ(FingerprintNetConfig::parse_channels("8"), (std::vector<int>{8}));
  for (const char* bad : {"", "8,x", "8x,16", "8,,16", "8,16,"})
    EXPECT_THROW(FingerprintNetConfig::parse_channels(bad), Error) << bad;
}

}  // namespace
}  // namespace earmark
