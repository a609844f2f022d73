#pragma once
// AST, the Audio Spectrogram Transformer (Gong et al. 2021, YuanGongND/ast), eval mode, ported to
// libtorch: the normalised 128-band Kaldi fbank of 1024 frames (features/kaldi_fbank.h,
// ast_input_1024), 16x16 patches every 10 bins and 10 frames (12 x 101, frequency-major), the
// class and distillation tokens, a DeiT encoder, the final norm, and the pooled embedding
// (class + distillation token) / 2, 768-d in the published model; then the 527 AudioSet logits.
// This header is free of libtorch.
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "earmark/embeddings/activation_taps.h"

namespace earmark {

struct AstOutput {
  std::vector<float> pooled;  // the embedding: (cls + dist) / 2 after the final norm
  std::vector<float> logits;  // mlp_head output (no sigmoid, as the original's forward)
};

// Activations it taps (ActivationTaps): patch_embed (patch tokens before the class tokens and
// positions), block0 (after the first block), norm (after the final norm).
using AstTaps = ActivationTaps;

class AstModel {
 public:
  static constexpr int kFrames = 1024;
  static constexpr int kMelBins = 128;

  // A converted checkpoint with the original key names (`module.v.…`, `module.mlp_head.…`; the
  // `module.` prefix optional), e.g. from audioset_10_10_0.4593.pth by
  // tools/convert_checkpoint.py. Every key is checked; throws earmark::Error naming what is
  // missing, unexpected or of the wrong shape. `heads`: attention heads, 0 for the published
  // models' rule of 64 dimensions per head (12 for the 768-d base model).
  static std::unique_ptr<AstModel> load(const std::string& path, int threads = 1, int heads = 0);
  virtual ~AstModel() = default;

  virtual int embedding_dim() const = 0;
  virtual int classes() const = 0;

  // input: [kFrames x kMelBins], the normalised fbank (ast_input_1024).
  virtual AstOutput forward(const float* input, AstTaps* taps = nullptr) = 0;
  // `batch` inputs back to back, in one pass.
  virtual std::vector<AstOutput> forward_batch(const float* inputs, size_t batch) = 0;
};

}  // namespace earmark
