#pragma once
// Streaming embedding of a recording: samples in (16 kHz mono, as the decoder gives them), one
// vector per window of embedder.window_frames() fbank frames every hop_frames frames out. The
// log-mel is computed frame by frame and windows are embedded in batches, so memory stays bounded
// whatever the length of the input.
#include <cstddef>
#include <deque>
#include <vector>

#include "earmark/decode/audio_decoder.h"
#include "earmark/embeddings/embedder.h"
#include "earmark/features/kaldi_fbank.h"

namespace earmark {

class WindowEmbedder : public AudioConsumer {
 public:
  // Throws earmark::Error for a hop outside [1, 1000] frames or an embedder whose mel bins are not
  // the fbank's 128.
  WindowEmbedder(Embedder& embedder, int hop_frames, size_t batch = 64);
  void consume(const float* samples, size_t count) override;
  // Embeds what is pending; a recording shorter than one window gives one window, padded with
  // silence, so that even the shortest query has a vector.
  void finish();

  int dim() const { return dim_; }
  int hop_frames() const { return hop_; }
  size_t windows() const { return vectors_.size() / size_t(dim_); }
  const std::vector<float>& vectors() const { return vectors_; }  // windows() x dim() row-major
  // Start time of window i, in seconds (frames are 10 ms apart).
  double window_start(size_t i) const { return double(i) * hop_ * 0.01; }
  double window_seconds() const { return (400 + 160.0 * (frames_per_window_ - 1)) / 16000.0; }

 private:
  void flush_batch();

  Embedder& embedder_;
  KaldiFbank fbank_;
  int hop_, frames_per_window_, bins_, dim_;
  size_t batch_;
  std::vector<float> samples_;             // not yet framed
  std::deque<std::vector<float>> frames_;  // fbank frames not yet past every window that needs them
  size_t frames_seen_ = 0;                 // fbank frames computed so far
  size_t next_window_ = 0;                 // index of the next window to cut
  std::vector<float> pending_;             // cut windows waiting for a batch
  size_t pending_count_ = 0;
  std::vector<float> vectors_;
};

}  // namespace earmark
