// earmark-train: trains the fingerprint network on pair files that `earmark train --prepare-only`
// made, possibly on another machine. It needs libtorch and header-only libraries alone, so it
// builds against PyTorch's CUDA libtorch where Debian's CPU one is no use (see README,
// EARMARK_TRAINER_ONLY).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "earmark/common/cpu_setup.h"
#include "earmark/common/error.h"
#include "earmark/training/trainer.h"

int main(int argc, char** argv) {
  using namespace earmark;
  configure_cpu_inference();
  spdlog::set_default_logger(spdlog::stderr_color_mt("earmark-train"));  // results to stdout
  spdlog::set_pattern("%^%l%$: %v");
  CLI::App app{"earmark-train: train the fingerprint network on prepared pair files"};
  TrainOptions o;
  std::string pairs_dir, channels;
  app.add_option("--pairs", pairs_dir,
                 "folder holding train-pairs.bin and val-pairs.bin (earmark train --prepare-only)")
      ->required();
  app.add_option("-o,--out", o.out_dir, "output folder (checkpoint, weights); resumes from it")
      ->required();
  app.add_option("--steps", o.steps, "optimiser steps in all")->check(CLI::Range(1, 10000000));
  app.add_option("--batch", o.batch_pairs, "pairs per step")->check(CLI::Range(2, 8192));
  app.add_option("--lr", o.learning_rate, "peak learning rate");
  app.add_option("--temperature", o.temperature, "NT-Xent temperature");
  app.add_option("--warmup", o.warmup_steps, "warm-up steps");
  app.add_option("--seed", o.seed, "seed of the order and the weights");
  app.add_option("--dim", o.net.dim, "embedding dimension");
  app.add_option("--channels", channels, "channels per stage, e.g. 24,48,96,160,256");
  app.add_option("--device", o.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--name", o.name, "model name recorded in the weights");
  app.add_option("--checkpoint-every", o.checkpoint_every, "steps between checkpoints");
  app.add_option("--validate-every", o.validate_every, "steps between validations");
  app.add_option("--stop-after", o.stop_after_steps, "end this run after so many steps");
  app.add_option("--max-minutes", o.max_minutes, "end this run after so many minutes");
  app.add_option("-j,--threads", o.threads, "CPU threads")->check(CLI::Range(1, 256));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (!channels.empty()) o.net.channels = FingerprintNetConfig::parse_channels(channels);
    const PairCache train = PairCache::read(training_pairs_path(pairs_dir));
    const PairCache val = PairCache::read(validation_pairs_path(pairs_dir));
    // The window is the pairs'; the rest of the network is the options'.
    o.net.window_frames = train.shape().window_frames;
    o.net.mel_bins = train.shape().mel_bins;
    spdlog::info("training pairs: {} and {} validation pairs of {} x {} from {}", train.size(),
                 val.size(), train.shape().window_frames, train.shape().mel_bins, pairs_dir);
    const TrainReport r = train_on_pairs(train, val, o);
    std::cout << nlohmann::json({{"steps", r.steps},
                                 {"loss", r.loss},
                                 {"val_top1", r.val_top1},
                                 {"pairs_per_second", r.pairs_per_second},
                                 {"weights", r.weights}})
                     .dump()
              << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "earmark-train: %s\n", e.what());
    return 2;
  }
}
