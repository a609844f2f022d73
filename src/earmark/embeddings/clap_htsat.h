#pragma once
// The audio side of LAION-CLAP (Wu et al. 2023, LAION-AI/CLAP) with the HTSAT encoder (Chen et
// al. 2022), eval mode, non-fusion checkpoints, ported to libtorch: the 48 kHz log-mel
// (features/slaney_logmel.h) of a 10 s clip, batch norm over the mel bins, the 1001 frames
// stretched to 1024 (bicubic) and folded into a 256 x 256 image of four time chunks, 4x4 patches,
// four stages of Swin blocks (8x8 windows, every other block shifted by 4), the final norm, the
// token mean -> the latent `embedding` (768-d for HTSAT-tiny), the token-semantic convolution ->
// 527 clip-wise tag scores, and the audio projection -> the 512-d joint embedding, L2-normalised.
// The geometry (width, depths, heads, window) is read from the checkpoint. This header is free of
// libtorch.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "earmark/embeddings/activation_taps.h"
#include "earmark/features/slaney_logmel.h"

namespace earmark {

struct ClapOutput {
  std::vector<float> embedding;   // HTSAT's latent token mean (768-d for HTSAT-tiny)
  std::vector<float> clipwise;    // sigmoid tag scores (527); empty for checkpoints without them
  std::vector<float> projection;  // audio_projection output (512-d)
  std::vector<float> joint;       // projection / |projection|: CLAP's audio embedding
};

// Activations it taps (ActivationTaps): bn0, wav2img (the folded image), patch_embed, layer0 (the
// first stage, after its patch merging), norm (after the final norm).
using ClapTaps = ActivationTaps;

// The clip CLAP embeds: 10 s at 48 kHz.
inline constexpr size_t kClapClipSamples = 480000;

// The original's `repeatpad` for a clip shorter than 10 s: the clip repeated whole as often as it
// fits, then zeros to 10 s. A longer clip is cut to its first 10 s (the original picks a random
// 10 s when training; a window of the embedder never is longer).
std::vector<float> clap_repeat_pad(const float* samples, size_t count);

class ClapHtsat {
 public:
  // A converted checkpoint with the original key names (`module.audio_branch.…`,
  // `module.audio_projection.…`, the `module.` prefix optional; text-side keys are skipped), e.g.
  // from 630k-audioset-best.pt by tools/convert_checkpoint.py. Every audio-side key is checked;
  // throws earmark::Error naming what is missing, unexpected or of the wrong shape.
  static std::unique_ptr<ClapHtsat> load(const std::string& path, int threads = 1);
  virtual ~ClapHtsat() = default;

  virtual int embedding_dim() const = 0;  // the latent width
  virtual int joint_dim() const = 0;      // the projection's width
  virtual int classes() const = 0;        // 0 when the checkpoint has no tag head
  virtual const SlaneyLogMelOptions& front_end() const = 0;

  // From log-mels of 10 s clips, `batch` x [1001 x 64] row-major (dB, as SlaneyLogMel computes
  // them). Taps are of the first clip.
  virtual std::vector<ClapOutput> forward_logmel(const float* logmel, size_t batch,
                                                 ClapTaps* taps = nullptr) = 0;
  // From samples at 48 kHz, as the original takes a clip: repeat-padded to 10 s.
  virtual ClapOutput forward(const float* samples, size_t count, ClapTaps* taps = nullptr) = 0;
};

}  // namespace earmark
