#pragma once
// The fingerprint network as a libtorch module. Only fingerprint_net.cpp and the trainer include
// this header: every file that includes <torch/torch.h> costs ~35 s and 1.2 GB to compile.
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "earmark/common/safetensors.h"
#include "earmark/embeddings/fingerprint_net.h"

namespace earmark {

struct FingerprintNetImpl : torch::nn::Module {
  explicit FingerprintNetImpl(const FingerprintNetConfig& config);
  // x: [batch, window_frames, mel_bins], already normalised -> [batch, dim], rows of unit length.
  torch::Tensor forward(torch::Tensor x);

  FingerprintNetConfig config;
  torch::nn::Sequential stages{nullptr};
  torch::nn::Linear projection{nullptr};
};
TORCH_MODULE(FingerprintNet);

// Parameters and buffers by their module path ("stages.0.weight", ...), the names the weight files
// use.
std::vector<std::pair<std::string, torch::Tensor>> fingerprint_state(FingerprintNet& net);

// Writes the network (and any extra tensors, e.g. optimiser state) to a safetensors file with the
// config in its metadata, atomically.
void save_fingerprint_net(FingerprintNet& net, const std::string& path,
                          std::map<std::string, std::string> metadata = {},
                          const std::vector<std::pair<std::string, torch::Tensor>>& extra = {});

// Copies every parameter and buffer of `net` from the file; throws earmark::Error if one is
// missing or has another shape.
void load_fingerprint_state(FingerprintNet& net, const SafetensorsFile& file);

// The config stored in a weight file's metadata.
FingerprintNetConfig fingerprint_config_of(const SafetensorsFile& file);

// A float tensor read from a safetensors file (F32 only).
torch::Tensor read_tensor(const SafetensorsFile& file, const std::string& name);

}  // namespace earmark
