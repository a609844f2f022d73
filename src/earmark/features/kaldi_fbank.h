#pragma once
// Kaldi-compatible log-mel filterbank ("fbank") exactly as AST computes it with
// torchaudio.compliance.kaldi.fbank(htk_compat=True, use_energy=False, window_type='hanning',
// num_mel_bins=128, dither=0, frame_shift=10): 25 ms / 10 ms at 16 kHz, snip_edges.
#include <cstddef>
#include <memory>
#include <vector>

#include "earmark/features/stft.h"

namespace earmark {

struct FbankOptions {
  int sample_rate = 16000;
  double frame_length_ms = 25.0;
  double frame_shift_ms = 10.0;
  int num_mel_bins = 128;
  double low_freq = 20.0;
  double high_freq = 0.0;  // <= 0: offset from Nyquist
  double preemphasis = 0.97;
  bool remove_dc_offset = true;
  WindowType window = WindowType::kHannSymmetric;  // torchaudio/Kaldi "hanning"
  bool round_to_power_of_two = true;               // FFT size 400 -> 512
};

// Kaldi/HTK triangular mel bank: [num_mel_bins x (fft_size/2+1)] row-major, Nyquist column zero.
// Computed in float32 the way torchaudio does (HTK mel 1127 ln(1 + f/700), no area
// normalisation). Throws earmark::Error for invalid options.
std::vector<float> kaldi_mel_banks(const FbankOptions& options, size_t fft_size);

// Log of FLT_EPSILON: the value of an empty (silent) mel band.
inline constexpr float kFbankLogFloor = -15.942385f;

class KaldiFbank {
 public:
  // Throws earmark::Error for invalid options (non-positive rate/lengths, bad frequency range,
  // fewer than 4 mel bins, ...).
  explicit KaldiFbank(const FbankOptions& options = {});
  ~KaldiFbank();
  KaldiFbank(const KaldiFbank&) = delete;
  KaldiFbank& operator=(const KaldiFbank&) = delete;
  KaldiFbank(KaldiFbank&& other) noexcept;
  KaldiFbank& operator=(KaldiFbank&& other) noexcept;

  size_t frame_length() const;  // samples (400)
  size_t frame_shift() const;   // samples (160)
  size_t fft_size() const;      // samples (512)
  int num_bins() const;

  // Number of complete frames in n samples (snip_edges): 1 + (n - 400) / 160, 0 if n < 400.
  size_t num_frames(size_t num_samples) const;

  // Log-mel of one frame of frame_length() samples -> num_bins() values (natural log, floored at
  // FLT_EPSILON). Uses internal buffers: one KaldiFbank per thread.
  void compute_frame(const float* samples, float* out);

  // Whole signal -> [num_frames x num_bins] row-major.
  std::vector<float> compute(const float* samples, size_t count);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// AST input normalisation (AudioSet statistics of YuanGongND/ast).
inline constexpr float kAstFbankMean = -4.2677393f;
inline constexpr float kAstFbankStd = 4.5689974f;

// AST model input from an fbank [num_frames x num_bins]: zero rows (log domain) appended up to
// target_frames, or only the first target_frames frames kept; then (x - mean) / (2 * std).
// Returns [target_frames x num_bins].
std::vector<float> ast_input(const float* fbank, size_t num_frames, size_t num_bins,
                             size_t target_frames = 1024);

// ast_input() of a whole [frames x 128] fbank to [1024 x 128]. Throws earmark::Error if the size
// is not a multiple of num_bins.
std::vector<float> ast_input_1024(const std::vector<float>& fbank, size_t num_bins = 128);

}  // namespace earmark
