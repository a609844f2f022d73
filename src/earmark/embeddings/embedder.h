#pragma once
// An embedding model: fixed-length windows of the 128-band log-mel (features/kaldi_fbank.h) in,
// L2-normalised vectors out. Every model Earmark matches with (its own fingerprint network, and
// later the published AST, CLAP and PANNs ports) sits behind this interface, so the vector index
// and the sequence matcher never see a framework type.
#include <cstddef>
#include <string>

namespace earmark {

class Embedder {
 public:
  virtual ~Embedder() = default;
  virtual std::string name() const = 0;
  virtual int dim() const = 0;            // length of each output vector
  virtual int window_frames() const = 0;  // fbank frames per window (10 ms each)
  virtual int mel_bins() const = 0;

  // windows: count x window_frames() x mel_bins() row-major raw log-mel (as KaldiFbank computes
  // it); out: count x dim() row-major, each row of unit length. Batched: one call with many
  // windows is much cheaper than many calls with one. Not thread-safe: one Embedder per thread.
  virtual void embed(const float* windows, size_t count, float* out) = 0;
};

}  // namespace earmark
