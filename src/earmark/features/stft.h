#pragma once
// Real FFT power spectra of windowed frames (FFTW, single precision). Shared by every stage that
// needs a spectrogram: the Kaldi fbank of the embedding models and the landmark spectrogram.
#include <complex>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace earmark {

// The FFTW planner (plan creation and destruction) is not thread-safe; fftwf_execute* on distinct
// plans/buffers is. Every FFTW plan in the library is made and destroyed under this one lock.
std::mutex& fftw_planner_mutex();

enum class WindowType { kHann, kHannSymmetric, kHamming, kPovey, kRectangular };

// Window of `length` samples, computed in double and rounded to float:
//   kHann          0.5 - 0.5 cos(2 pi n / length)            (periodic, as for an STFT)
//   kHannSymmetric 0.5 - 0.5 cos(2 pi n / (length - 1))      (Kaldi/torchaudio "hanning")
//   kHamming       0.54 - 0.46 cos(2 pi n / (length - 1))    (Kaldi "hamming")
//   kPovey         (0.5 - 0.5 cos(2 pi n / (length - 1)))^0.85
//   kRectangular   1
// The symmetric windows of length 1 are {1}; length 0 gives an empty vector.
std::vector<float> make_window(WindowType type, size_t length);

// One FFT size, reusable; not thread-safe (each thread owns its Stft). Distinct Stft objects may
// be used concurrently from different threads; plan creation/destruction is serialised
// internally because the FFTW planner is not thread-safe.
class Stft {
 public:
  // fft_size >= 1 (any size; powers of two are fastest). Throws earmark::Error for 0.
  explicit Stft(size_t fft_size);
  ~Stft();
  Stft(const Stft&) = delete;
  Stft& operator=(const Stft&) = delete;
  Stft(Stft&& other) noexcept;
  Stft& operator=(Stft&& other) noexcept;

  size_t fft_size() const { return fft_size_; }
  size_t num_bins() const { return fft_size_ / 2 + 1; }

  // frame: `length` <= fft_size samples (already windowed), zero-padded on the right.
  // power: num_bins() values |X[k]|^2.
  void power_spectrum(const float* frame, size_t length, float* power);

  // Same input; magnitude: num_bins() values |X[k]|.
  void magnitude_spectrum(const float* frame, size_t length, float* magnitude);

  // Same input; spectrum: num_bins() complex values X[k] = sum_n x[n] exp(-2 pi i k n / N)
  // (unnormalised, FFTW/numpy sign convention).
  void spectrum(const float* frame, size_t length, std::complex<float>* spectrum);

 private:
  // Copies the frame into the FFT input, zero-pads and runs the transform; returns the output
  // buffer (num_bins() interleaved re/im pairs).
  const float* transform(const float* frame, size_t length);

  size_t fft_size_;
  struct Plan;
  std::unique_ptr<Plan> plan_;
};

}  // namespace earmark
