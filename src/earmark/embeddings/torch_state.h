#pragma once
// Strict loading of a published checkpoint (converted to safetensors) into a libtorch module:
// every parameter and buffer the module has must be in the file with the same shape and dtype,
// and every tensor in the file must be known. For torch translation units only.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "earmark/common/safetensors.h"
#include "earmark/embeddings/activation_taps.h"

namespace earmark {

// How a checkpoint's keys relate to the names of the port's modules (the original code's names).
struct StateKeys {
  // Prefixes a file key may carry before the original name; the first that matches is dropped:
  // the `module.` of checkpoints saved from DataParallel/DDP, for instance.
  std::vector<std::string> prefixes;
  // Names that are known and deliberately not loaded into the module (they can still be read):
  // frozen STFT kernels the port computes itself, mel filters it takes apart, unused heads.
  std::set<std::string> ignored;
  // The same for whole families of names: those starting with one of these (the text side of a
  // CLAP checkpoint, for instance).
  std::vector<std::string> ignored_prefixes;
  // Module tensors the file may lack, named by how their name ends: buffers the module computes
  // itself and the original also stores (Swin's relative position index and shift masks). When the
  // file has them they are loaded, as the original would.
  std::vector<std::string> optional_suffixes;
  // Another naming of the same tensors (the Hugging Face conversions): maps a file key onto the
  // original name, or returns false to leave the key as it is. A tensor the original keeps fused
  // and the other naming splits (attention's qkv into query, key and value) arrives in `parts`
  // pieces; `part` says which, and the pieces are concatenated along the first dimension.
  std::function<bool(const std::string& key, std::string& name, int& part, int& parts)> rename;
};

// A checkpoint seen under the original names: prefixes dropped, another naming mapped, split
// tensors joined.
class Checkpoint {
 public:
  // Opens `path`; throws earmark::Error naming the file and `model` when it cannot be read or a
  // split tensor lacks a piece.
  Checkpoint(const std::string& path, StateKeys keys, std::string model);

  const std::string& path() const { return file_.path(); }
  bool contains(const std::string& name) const { return tensors_.count(name) > 0; }
  // The shape of a tensor the checkpoint must hold to be one of the model's; throws earmark::Error
  // when it is not there.
  std::vector<int64_t> shape(const std::string& name) const;
  // The tensor's values (F32), split pieces joined.
  torch::Tensor read(const std::string& name) const;

  // Copies the checkpoint into `module`'s parameters and buffers. Throws earmark::Error naming
  // the file and the model, and listing every missing, unexpected and mismatched tensor (with
  // the file's key), when they do not fit.
  void load_into(torch::nn::Module& module) const;

 private:
  struct Tensor {
    std::vector<std::string> keys;  // one file key, or the pieces of a split tensor in order
    std::string dtype;
    std::vector<int64_t> shape;
    bool ignored = false;  // known, readable, not loaded
  };

  SafetensorsFile file_;
  StateKeys keys_;
  std::string model_;
  std::map<std::string, Tensor> tensors_;  // by original name
};

// `text` with its first `from` replaced by `to` (unchanged when there is none).
std::string replace_first(const std::string& text, const std::string& from, const std::string& to);

// The Hugging Face naming of a transformer block onto the original (timm/Swin) one: the split
// `<self>query.`, `<self>key.`, `<self>value.` become pieces 0, 1, 2 of `attn.qkv.`, the rest of
// `<self>` becomes `attn.`, `<output>` becomes `attn.proj.`, and the norms and the MLP take their
// original names (layernorm_before/after: norm1/2; intermediate.dense, output.dense: mlp.fc1/2).
std::string hugging_face_block_name(const std::string& name, const std::string& self,
                                    const std::string& output, int& part, int& parts);

// Where the published models run: the GPU when libtorch has CUDA and sees one (Debian's libtorch
// is CPU-only; PyTorch's CUDA libtorch is used by pointing CMAKE_PREFIX_PATH at it), else the CPU.
// EARMARK_DEVICE=cpu keeps them on the CPU.
torch::Device inference_device();

// A float tensor's values, row-major (copied back from the GPU when it is there).
std::vector<float> tensor_values(const torch::Tensor& tensor);

// Records a float tensor under `name` when `taps` is given.
void tap(ActivationTaps* taps, const std::string& name, const torch::Tensor& tensor);

}  // namespace earmark
