#pragma once
// The training pairs on disk: what `earmark train` makes from audio (training_pairs.h) and what
// the trainer reads. Kept apart from the making, which needs FFmpeg and librubberband, so that
// a trainer built against another libtorch (a CUDA one, see README) needs nothing else.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace earmark {

struct PairShape {
  int window_frames = 96;
  int mel_bins = 128;
  size_t values() const { return size_t(window_frames) * mel_bins; }
  // Samples a window of fbank frames spans (25 ms frames every 10 ms at 16 kHz).
  size_t window_samples() const { return 400 + size_t(window_frames - 1) * 160; }
};

// What made a cache: a run reuses a cache only if it would make exactly the same pairs.
struct PairCacheKey {
  uint64_t seed = 0;
  uint64_t count = 0;
  PairShape shape;
  uint64_t recipe_hash = 0;  // of the augmentation options and the audio (names and lengths)
};

// Pairs of log-mel windows, an anchor and its degraded positive, stored quantised (1/8
// natural-log steps from -16, one byte per value): 24 KB per pair of 96 x 128 windows.
class PairCache {
 public:
  PairCache() = default;
  PairCache(const PairCacheKey& key);  // count pairs of zeros, to be filled with set()

  // The cache at `path`, whatever made it. Throws earmark::Error for a missing, foreign,
  // truncated or absurd file.
  static PairCache read(const std::string& path);
  // The cache at `path` if `key` made it; false (and `out` untouched) otherwise, or if the file
  // is missing or damaged.
  static bool read_if(const std::string& path, const PairCacheKey& key, PairCache& out);
  // Writes atomically: a reader never sees a partial file. Throws earmark::Error.
  void write(const std::string& path) const;

  const PairCacheKey& key() const { return key_; }
  size_t size() const { return size_t(key_.count); }
  const PairShape& shape() const { return key_.shape; }
  // Dequantised anchor / positive of pair i.
  void anchor(size_t i, float* out) const;
  void positive(size_t i, float* out) const;
  void set(size_t i, const float* anchor, const float* positive);

  static uint8_t quantise(float v);
  static float dequantise(uint8_t q) { return float(q) * 0.125f - 16.0f; }

 private:
  PairCacheKey key_;
  std::vector<uint8_t> data_;  // count x {anchor, positive} x values
};

}  // namespace earmark
