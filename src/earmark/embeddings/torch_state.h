#pragma once
// Strict loading of a published checkpoint (converted to safetensors) into a libtorch module:
// every parameter and buffer the module has must be in the file with the same shape and dtype,
// and every tensor in the file must be known. For torch translation units only.
#include <torch/torch.h>

#include <set>
#include <string>
#include <vector>

#include "earmark/common/safetensors.h"
#include "earmark/embeddings/activation_taps.h"

namespace earmark {

struct StateKeys {
  // Prefixes a file key may carry before the module's own name, tried in order ("" first): the
  // `module.` of checkpoints saved from DataParallel/DDP, for instance.
  std::vector<std::string> prefixes = {""};
  // File keys (after a prefix) that are known and deliberately not loaded: frozen STFT kernels the
  // port computes itself, heads it does not use.
  std::set<std::string> ignored;
};

// Copies the file's tensors into `module`'s parameters and buffers. Throws earmark::Error naming
// the file and `model`, and listing every missing, unexpected and mismatched key, when they do
// not fit.
void load_state_strict(torch::nn::Module& module, const SafetensorsFile& file,
                       const StateKeys& keys, const std::string& model);

// The shape of a tensor the checkpoint must hold to be one of `model`'s; throws earmark::Error
// when it is not there.
std::vector<int64_t> required_shape(const SafetensorsFile& file, const std::string& key,
                                    const std::string& model);

// A float tensor's values, row-major.
std::vector<float> tensor_values(const torch::Tensor& tensor);

// Records a float tensor under `name` when `taps` is given.
void tap(ActivationTaps* taps, const std::string& name, const torch::Tensor& tensor);

}  // namespace earmark
