#pragma once
// PANNs CNN14 (Kong et al. 2020, qiuqiangkong/audioset_tagging_cnn), eval mode, ported to
// libtorch: the log-mel of the signal at the model's own rate (features/slaney_logmel.h), batch
// norm over the mel bins, six VGG-like blocks of two 3x3 convolutions, frequency mean, max + mean
// over time, fc1 -> the 2048-d `embedding`, then fc_audioset and a sigmoid -> 527 clip-wise tag
// scores. The geometry (channels, classes, 32 or 16 kHz front end) is read from the checkpoint.
// This header is free of libtorch.
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "earmark/embeddings/activation_taps.h"
#include "earmark/features/slaney_logmel.h"

namespace earmark {

struct Cnn14Output {
  std::vector<float> embedding;  // fc1 width (2048 in the published model)
  std::vector<float> clipwise;   // sigmoid tag scores (527 AudioSet classes)
};

// Activations it taps (ActivationTaps): bn0, conv_block1, conv_block6 (before pooling over time and
// frequency).
using Cnn14Taps = ActivationTaps;

class PannsCnn14 {
 public:
  // A converted checkpoint (safetensors with the original key names, e.g. from
  // Cnn14_mAP=0.431.pth by tools/convert_checkpoint.py). Every key is checked; throws
  // earmark::Error naming what is missing, unexpected or of the wrong shape.
  static std::unique_ptr<PannsCnn14> load(const std::string& path, int threads = 1);
  virtual ~PannsCnn14() = default;

  virtual int embedding_dim() const = 0;
  virtual int classes() const = 0;
  // The front end this checkpoint was trained with (its melW, its sample rate).
  virtual const SlaneyLogMelOptions& front_end() const = 0;

  // From a log-mel [frames x 64] (dB, as SlaneyLogMel computes it).
  virtual Cnn14Output forward_logmel(const float* logmel, size_t frames,
                                     Cnn14Taps* taps = nullptr) = 0;
  // `batch` log-mels of `frames` frames each, back to back, in one pass.
  virtual std::vector<Cnn14Output> forward_logmel_batch(const float* logmels, size_t batch,
                                                        size_t frames) = 0;
  // From samples at front_end().sample_rate, as the original takes a clip: whole, as is.
  virtual Cnn14Output forward(const float* samples, size_t count, Cnn14Taps* taps = nullptr) = 0;
};

}  // namespace earmark
