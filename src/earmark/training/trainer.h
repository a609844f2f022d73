#pragma once
// Contrastive training of the fingerprint network (NT-Xent over in-batch negatives), on the CPU or
// a CUDA device. Resumable: a checkpoint (weights, optimiser moments, step) is written atomically
// every few hundred steps and picked up by the next run with the same output folder.
// Two halves: prepare_training_pairs() (training_run.cpp) decodes and degrades audio into cached
// pairs; train_on_pairs() (trainer.cpp) needs only those and libtorch, so the pairs can be made
// on one machine and the network trained on another (earmark-train, see README).
#include <cstdint>
#include <string>
#include <vector>

#include "earmark/embeddings/fingerprint_net.h"
#include "earmark/training/pair_cache.h"
#include "earmark/training/training_pairs.h"

namespace earmark {

struct TrainingData {
  std::vector<std::string> music;   // training music (>= 30 s each)
  std::vector<std::string> noise;   // effects and ambience for augmentation
  std::vector<std::string> speech;  // recorded and synthetic speech for augmentation
};

struct TrainOptions {
  std::string out_dir;  // pair caches, checkpoint.safetensors, fingerprint_net.safetensors
  FingerprintNetConfig net;
  AugmentationOptions augment;
  size_t train_pairs = 60000;  // pairs to make; epochs go over them in seeded orders
  size_t val_pairs = 1000;     // pairs from held-out music files, for the retrieval accuracy
  double val_share = 0.05;     // share of the music files held out
  int batch_pairs = 128;       // 2x this many windows per step
  int steps = 4000;
  int warmup_steps = 200;
  double learning_rate = 2e-3;  // peak; linear warm-up, cosine decay to 5 %
  double weight_decay = 1e-4;   // decoupled (AdamW)
  double temperature = 0.05;
  int threads = 2;
  uint64_t seed = 1;
  int checkpoint_every = 200;
  int validate_every = 200;
  // Bounds on this run (0: none): it checkpoints and returns when either is reached; the next run
  // with the same options resumes there, on the same learning-rate schedule.
  int stop_after_steps = 0;
  double max_minutes = 0;
  std::string device = "cpu";       // "cpu" or "cuda"
  std::string name = "earmark-fp";  // recorded in the weight file

  // Throws earmark::Error on absurd values (the augmentation options are checked where pairs
  // are made).
  void validate() const;
};

struct TrainReport {
  int steps = 0;          // steps done in total (this run and those it resumed)
  double first_loss = 0;  // mean loss over this run's first 10 steps
  double loss = 0;        // mean loss over the last 50 steps
  double val_top1 = 0;    // share of held-out degraded windows whose nearest clean one is theirs
  double pairs_per_second = 0;
  std::string weights;  // path of the final weights
};

inline std::string training_pairs_path(const std::string& out_dir) {
  return out_dir + "/train-pairs.bin";
}
inline std::string validation_pairs_path(const std::string& out_dir) {
  return out_dir + "/val-pairs.bin";
}

// Creates the output folder (and its parents); throws earmark::Error if it cannot.
void create_training_folder(const std::string& dir);

struct PreparedPairs {
  PairCache train, val;
};

// Decodes the data and makes the pair caches in options.out_dir, or reads them if they hold
// exactly these pairs. Throws earmark::Error on bad options, no usable music, or an output
// folder that cannot be written.
PreparedPairs prepare_training_pairs(const TrainingData& data, const TrainOptions& options);

// Trains to options.steps on the given pairs, resuming from options.out_dir's checkpoint, and
// writes the final weights there. Logs progress, loss and validation accuracy to stderr. Throws
// earmark::Error on bad options, pairs of another shape than the network's, or an output folder
// that cannot be written.
TrainReport train_on_pairs(const PairCache& train, const PairCache& val,
                           const TrainOptions& options);

// prepare_training_pairs(), then train_on_pairs().
TrainReport train_fingerprint_net(const TrainingData& data, const TrainOptions& options);

}  // namespace earmark
