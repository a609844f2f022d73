#pragma once
// The log-mel front end of PANNs (CNN14) and LAION-CLAP (HTSAT), as torchlibrosa computes it:
// periodic Hann window, the signal reflect-padded by half an FFT at each end (centred frames),
// power spectrum, librosa's Slaney mel filters (area-normalised triangles on the Slaney mel scale)
// and 10 log10 of the mel energies floored at 1e-10 (no top_db clamp). Unlike the Kaldi fbank of
// AST, it takes the signal at the model's own sample rate: 32 kHz for CNN14, 48 kHz for CLAP.
#include <cstddef>
#include <memory>
#include <vector>

namespace earmark {

struct SlaneyLogMelOptions {
  int sample_rate = 32000;
  int fft_size = 1024;  // also the window length
  int hop = 320;
  int mel_bins = 64;
  double fmin = 50.0;
  double fmax = 14000.0;

  // The configurations the published checkpoints were trained with.
  static SlaneyLogMelOptions panns_cnn14_32k() { return {32000, 1024, 320, 64, 50.0, 14000.0}; }
  static SlaneyLogMelOptions panns_cnn14_16k() { return {16000, 512, 160, 64, 50.0, 8000.0}; }
  static SlaneyLogMelOptions clap_htsat_48k() { return {48000, 1024, 480, 64, 50.0, 14000.0}; }
};

// librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm='slaney') transposed, as
// the checkpoints store it (`logmel_extractor.melW`): [fft_size/2 + 1 x mel_bins] row-major.
// Throws earmark::Error for invalid options.
std::vector<float> slaney_mel_filters(const SlaneyLogMelOptions& options);

// The dB value of a silent band: 10 log10(1e-10).
inline constexpr float kSlaneyLogMelFloor = -100.0f;

class SlaneyLogMel {
 public:
  // Throws earmark::Error for invalid options (non-positive rate, FFT or hop, a frequency range
  // outside [0, Nyquist], fewer than 1 mel bin).
  explicit SlaneyLogMel(const SlaneyLogMelOptions& options = {});
  ~SlaneyLogMel();
  SlaneyLogMel(const SlaneyLogMel&) = delete;
  SlaneyLogMel& operator=(const SlaneyLogMel&) = delete;
  SlaneyLogMel(SlaneyLogMel&& other) noexcept;
  SlaneyLogMel& operator=(SlaneyLogMel&& other) noexcept;

  const SlaneyLogMelOptions& options() const;
  int mel_bins() const;
  // The mel filters in use ([fft_size/2 + 1 x mel_bins]): computed, or taken from a checkpoint.
  const std::vector<float>& mel_filters() const;
  // Uses a checkpoint's own melW instead of the computed one (same shape, else earmark::Error).
  void set_mel_filters(std::vector<float> filters);

  // Frames of `count` samples: 1 + count / hop (centred; the padded signal is framed).
  size_t num_frames(size_t count) const;

  // Whole signal -> [num_frames x mel_bins] row-major, in dB. The reflect padding needs more than
  // fft_size/2 samples (the original refuses less); fewer throws earmark::Error. Uses internal
  // buffers: one object per thread.
  std::vector<float> compute(const float* samples, size_t count);

  // The power spectrogram the mel filters are applied to: [num_frames x fft_size/2 + 1].
  std::vector<float> power(const float* samples, size_t count);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace earmark
