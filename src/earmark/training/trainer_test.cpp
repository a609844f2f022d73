#include "earmark/training/trainer.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "earmark/common/error.h"
#include "earmark/common/safetensors.h"
#include "earmark/common/test_audio_test_util.h"

namespace earmark {
namespace {

struct Data {
  testutil::TempDir dir;
  TrainingData data;
  Data() {
    for (uint64_t s = 1; s <= 6; ++s) {
      const std::string p = dir / ("m" + std::to_string(s) + ".wav");
      testutil::write_wav(p, testutil::synth_music(s * 13, 12.0));
      data.music.push_back(p);
    }
    testutil::write_wav(dir / "noise.wav", testutil::white_noise(3, 32000, 0.1));
    data.noise.push_back(dir / "noise.wav");
  }
};

// Same tensors, element by element.
void expect_same_weights(const std::string& a_path, const std::string& b_path, double tolerance) {
  SafetensorsFile x(a_path), y(b_path);
  for (const std::string& name : x.names()) {
    if (x.info(name).dtype != "F32") continue;
    auto a = x.read_f32(name), b = y.read_f32(name);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tolerance) << name;
  }
}

TrainOptions tiny(const std::string& out, int steps) {
  TrainOptions o;
  o.out_dir = out;
  o.net.channels = {8, 16, 16};
  o.net.dim = 32;
  o.train_pairs = 192;
  o.val_pairs = 48;
  o.val_share = 0.2;
  o.batch_pairs = 32;
  o.steps = steps;
  o.warmup_steps = 5;
  o.learning_rate = 5e-3;
  o.threads = 1;
  o.checkpoint_every = 10;
  o.validate_every = 10;
  o.augment.p_codec = 0.2;
  o.augment.p_tempo_pitch = 0.2;
  return o;
}

TEST(Trainer, LearnsAndResumesExactly) {
  Data d;
  // 60 steps in one go.
  TrainReport straight = train_fingerprint_net(d.data, tiny(d.dir / "a", 60));
  EXPECT_EQ(straight.steps, 60);
  EXPECT_TRUE(testutil::file_exists(straight.weights));
  // The loss starts near ln(63) = 4.1 (chance among the batch's other windows) and falls; chance
  // is 1/48 for the held-out pairs.
  EXPECT_LT(straight.loss, straight.first_loss - 0.2) << straight.first_loss;
  EXPECT_GT(straight.val_top1, 0.15);

  // A run stopped after 25 steps, then a second run that resumes from its checkpoint to the end:
  // the same weights.
  TrainOptions first = tiny(d.dir / "b", 60);
  first.stop_after_steps = 25;
  EXPECT_EQ(train_fingerprint_net(d.data, first).steps, 25);
  TrainReport resumed = train_fingerprint_net(d.data, tiny(d.dir / "b", 60));
  EXPECT_EQ(resumed.steps, 60);
  expect_same_weights(straight.weights, resumed.weights, 1e-4);
  EXPECT_EQ(SafetensorsFile(resumed.weights).metadata().at("step"), "60");

  // The shipped-weights loader reads what the trainer wrote.
  auto net = load_fingerprint_net(resumed.weights);
  EXPECT_EQ(net->dim(), 32);
}

// The GPU path: pairs made here, the network trained from their files alone (earmark-train).
TEST(Trainer, TrainsFromPairFilesMadeElsewhere) {
  Data d;
  const TrainOptions made = tiny(d.dir / "made", 20);
  prepare_training_pairs(d.data, made);
  const PairCache train = PairCache::read(training_pairs_path(made.out_dir));
  const PairCache val = PairCache::read(validation_pairs_path(made.out_dir));
  EXPECT_EQ(train.size(), 192u);
  EXPECT_EQ(val.size(), 48u);
  TrainReport elsewhere = train_on_pairs(train, val, tiny(d.dir / "elsewhere", 20));
  TrainReport here = train_fingerprint_net(d.data, tiny(d.dir / "here", 20));
  EXPECT_EQ(elsewhere.steps, 20);
  expect_same_weights(here.weights, elsewhere.weights, 1e-5);

  // Pairs of another window length than the network's are refused.
  TrainOptions longer = tiny(d.dir / "longer", 20);
  longer.net.window_frames = 192;
  EXPECT_THROW(train_on_pairs(train, val, longer), Error);
  // Missing, foreign and truncated files are errors, not empty caches.
  EXPECT_THROW(PairCache::read(d.dir / "none.bin"), Error);
  EXPECT_THROW(PairCache::read(d.data.music[0]), Error);
  const std::string cut = d.dir / "cut.bin";
  std::filesystem::copy_file(training_pairs_path(made.out_dir), cut);
  std::filesystem::resize_file(cut, std::filesystem::file_size(cut) / 2);
  EXPECT_THROW(PairCache::read(cut), Error);
  // and a damaged cache in a run's folder is made again, not trusted.
  PairCache again;
  PairCacheKey key = train.key();
  EXPECT_FALSE(PairCache::read_if(cut, key, again));
  EXPECT_TRUE(PairCache::read_if(training_pairs_path(made.out_dir), key, again));
  key.seed += 1;
  EXPECT_FALSE(PairCache::read_if(training_pairs_path(made.out_dir), key, again));
}

TEST(Trainer, RefusesBadOptionsAndData) {
  Data d;
  TrainOptions o = tiny(d.dir / "c", 10);
  o.batch_pairs = 1;
  EXPECT_THROW(train_fingerprint_net(d.data, o), Error);
  o = tiny(d.dir / "c", 10);
  o.temperature = 0;
  EXPECT_THROW(train_fingerprint_net(d.data, o), Error);
  o = tiny("", 10);
  EXPECT_THROW(train_fingerprint_net(d.data, o), Error);
  TrainingData none;
  none.music = {d.dir / "missing.wav", d.dir / "also-missing.wav"};
  EXPECT_THROW(train_fingerprint_net(none, tiny(d.dir / "d", 10)), Error);
  // A checkpoint of another network shape is not silently reused.
  train_fingerprint_net(d.data, tiny(d.dir / "e", 10));
  o = tiny(d.dir / "e", 20);
  o.net.dim = 16;
  EXPECT_THROW(train_fingerprint_net(d.data, o), Error);
}

}  // namespace
}  // namespace earmark
