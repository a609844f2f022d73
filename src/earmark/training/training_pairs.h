#pragma once
// Training examples for the fingerprint network: a clean window of a reference (the "anchor", as
// the index will hold it) and the same moment after a random chain of degradations (the
// "positive", as a query will bring it). Every pair is a pure function of (seed, index), so a
// training run is reproducible and the augmented pairs can be cached on disk.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "earmark/training/pair_cache.h"

namespace earmark {

// Decoded training audio, 16 kHz mono, kept as 16-bit samples (10 h of music is 1.2 GB so).
class AudioBank {
 public:
  // Decodes every file (in parallel on `threads` threads, logging progress). Files that fail to
  // decode or are shorter than min_seconds are skipped with a warning; an empty bank is allowed.
  static AudioBank load(const std::vector<std::string>& paths, double min_seconds, int threads,
                        const std::string& what);
  void add(const std::string& name, const std::vector<float>& samples);

  size_t size() const { return clips_.size(); }
  const std::string& name(size_t i) const { return clips_[i].name; }
  size_t length(size_t i) const { return clips_[i].samples.size(); }
  double total_seconds() const;
  // Samples [begin, begin + count) of clip i, zero outside the clip.
  void read(size_t i, int64_t begin, size_t count, float* out) const;
  // A clip chosen with probability proportional to its length.
  size_t pick(uint64_t random) const;

 private:
  struct Clip {
    std::string name;
    std::vector<int16_t> samples;
  };
  std::vector<Clip> clips_;
  std::vector<uint64_t> cumulative_;  // running total of lengths, for pick()
};

// Probabilities and ranges of the degradation chain. Order: tempo/pitch, EQ, reverb, background
// (noise or ambience, speech, or both), gain and clipping, codec round trip; then the positive's
// window is cut with a random time offset.
struct AugmentationOptions {
  double p_tempo_pitch = 0.35;
  double max_tempo = 0.06;     // relative speed change, +-
  double max_semitones = 2.5;  // pitch shift, +-
  double p_eq = 0.4;           // random shelves, peaks, band limits
  double p_reverb = 0.25;
  double max_rt60_s = 0.8;
  double p_noise = 0.45;     // effects and ambience
  double p_speech = 0.35;    // recorded speech and TTS
  double min_snr_db = -3.0;  // music to background power
  double max_snr_db = 15.0;
  double p_gain_clip = 0.15;
  double p_codec = 0.35;      // mp3 32/64k, aac 48k, opus 16/32k
  double max_offset_s = 0.1;  // time jitter of the positive's window, +-

  void validate() const;  // throws earmark::Error on absurd values
};

// What was done to make a pair (for tests and logs).
struct PairRecipe {
  size_t clip = 0;
  int64_t start = 0;  // anchor's first sample in the clip
  double speed = 1, semitones = 0, offset_s = 0;
  bool eq = false, reverb = false, noise = false, speech = false, gain_clip = false;
  std::string codec;  // empty: none
};

class PairGenerator {
 public:
  PairGenerator(const AudioBank& music, const AudioBank& noise, const AudioBank& speech,
                const AugmentationOptions& options, const PairShape& shape);
  ~PairGenerator();
  // Raw log-mel windows (shape.values() floats each). Thread-safe only across PairGenerators:
  // use one per thread.
  void make(uint64_t seed, uint64_t index, float* anchor, float* positive,
            PairRecipe* recipe = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Generates `count` pairs (indices 0..count-1 of `seed`) on `threads` threads, or reads them
// from `path` if it holds exactly those; writes `path` if it did not (empty path: memory only).
PairCache build_pair_cache(const std::string& path, const AudioBank& music, const AudioBank& noise,
                           const AudioBank& speech, const AugmentationOptions& options,
                           const PairShape& shape, uint64_t seed, size_t count, int threads);

}  // namespace earmark
