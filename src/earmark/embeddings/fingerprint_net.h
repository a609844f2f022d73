#pragma once
// Earmark's own audio-fingerprint network: a small strided CNN over a ~1 s log-mel window, trained
// contrastively (training/trainer.h) so that a window and its degraded copies (noise, speech,
// codecs, reverb, EQ, tempo and pitch change) land together and every other window far away.
// This header is free of libtorch; the network itself lives in fingerprint_net.cpp.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "earmark/embeddings/embedder.h"

namespace earmark {

struct FingerprintNetConfig {
  int mel_bins = 128;
  int window_frames =
      96;  // 0.97 s of fbank frames; a multiple of 2^stages keeps every stride whole
  int dim = 128;
  // One stride-2 3x3 convolution (batch norm, ReLU) per stage; the last stage is flattened (it
  // keeps where in the window each pattern sits, which pooling would throw away) and projected to
  // dim.
  std::vector<int> channels = {24, 48, 96, 160, 256};

  nlohmann::json to_json() const;
  static FingerprintNetConfig from_json(const nlohmann::json& j);
  // Throws earmark::Error on absurd values.
  void validate() const;
  // "24,48,96,160,256" (the command lines' --channels) -> channels. Throws earmark::Error for
  // anything but comma-separated integers.
  static std::vector<int> parse_channels(const std::string& text);
  // Rows x columns of the last stage's map.
  int final_bins() const;
  int final_frames() const;
};

// Per-window input normalisation shared by training and inference: the window's mean log-energy is
// removed (the embedding must not depend on level) and the rest scaled to unit-ish range.
void normalise_fingerprint_window(const float* window, size_t values, float* out);

// Loads weights written by the trainer (safetensors; the config is in the file's metadata) and
// runs inference on `threads` intra-op threads. Throws earmark::Error for a missing or malformed
// file, or weights that do not fit the config.
std::unique_ptr<Embedder> load_fingerprint_net(const std::string& path, int threads = 1);

// A network with freshly initialised weights (seeded): for speed benchmarks and tests.
std::unique_ptr<Embedder> random_fingerprint_net(const FingerprintNetConfig& config, uint64_t seed,
                                                 int threads = 1);

// Where the shipped weights are: $EARMARK_MODEL_DIR, else the source tree's models/ folder baked in
// at build time, else models/ beside the executable's folder.
std::string default_fingerprint_weights();

}  // namespace earmark
