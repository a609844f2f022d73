// `earmark train` from audio: decode the music, noise and speech, make (or reuse) the cached
// pairs, then train on them (trainer.cpp). Only this half needs FFmpeg and librubberband.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "earmark/common/checksum.h"
#include "earmark/common/error.h"
#include "earmark/training/trainer.h"

namespace earmark {

namespace {

// Music files for validation: a fixed share chosen by a hash of the file name, at least one.
constexpr uint64_t kSplitSeed = 1469598103934665603ULL;
void split_music(const std::vector<std::string>& music, double share,
                 std::vector<std::string>& train, std::vector<std::string>& val) {
  std::vector<std::pair<uint64_t, std::string>> keyed;
  for (const auto& p : music) {
    // Seeded as when the shipped weights were trained, so their held-out files stay held out.
    const std::string name = std::filesystem::path(p).filename().string();
    keyed.emplace_back(fnv1a(kSplitSeed, name.data(), name.size()), p);
  }
  std::sort(keyed.begin(), keyed.end());
  const size_t n_val = std::max<size_t>(1, size_t(std::lround(share * keyed.size())));
  for (size_t i = 0; i < keyed.size(); ++i) (i < n_val ? val : train).push_back(keyed[i].second);
}

}  // namespace

PreparedPairs prepare_training_pairs(const TrainingData& data, const TrainOptions& options) {
  options.validate();
  options.augment.validate();
  if (options.train_pairs < size_t(2 * options.batch_pairs) || options.train_pairs > 20'000'000)
    throw Error("training: train_pairs must be at least two batches and at most 20 M");
  create_training_folder(options.out_dir);
  std::vector<std::string> train_music, val_music;
  split_music(data.music, options.val_share, train_music, val_music);
  if (train_music.empty()) throw Error("training: at least two music files are needed");
  AudioBank music = AudioBank::load(train_music, 2.0, options.threads, "training music");
  AudioBank held_out = AudioBank::load(val_music, 2.0, options.threads, "validation music");
  AudioBank noise = AudioBank::load(data.noise, 0.5, options.threads, "noise");
  AudioBank speech = AudioBank::load(data.speech, 0.5, options.threads, "speech");
  if (music.size() == 0 || held_out.size() == 0)
    throw Error("training: no decodable music for training or validation");

  const PairShape shape{options.net.window_frames, options.net.mel_bins};
  PreparedPairs pairs;
  pairs.train =
      build_pair_cache(training_pairs_path(options.out_dir), music, noise, speech, options.augment,
                       shape, options.seed, options.train_pairs, options.threads);
  pairs.val = build_pair_cache(validation_pairs_path(options.out_dir), held_out, noise, speech,
                               options.augment, shape, options.seed + 1000003, options.val_pairs,
                               options.threads);
  return pairs;
}

TrainReport train_fingerprint_net(const TrainingData& data, const TrainOptions& options) {
  const PreparedPairs pairs = prepare_training_pairs(data, options);
  return train_on_pairs(pairs.train, pairs.val, options);
}

}  // namespace earmark
