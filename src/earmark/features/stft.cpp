#include "earmark/features/stft.h"

#include <fftw3.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "earmark/common/error.h"

namespace earmark {

namespace {

constexpr double kPi = 3.14159265358979323846;

}  // namespace

std::mutex& fftw_planner_mutex() {
  static std::mutex mutex;
  return mutex;
}

std::vector<float> make_window(WindowType type, size_t length) {
  std::vector<float> w(length, 1.0f);
  if (length == 0) return w;
  const double n_total = static_cast<double>(length);
  const double sym_denominator = length > 1 ? n_total - 1.0 : 1.0;
  for (size_t i = 0; i < length; ++i) {
    const double n = static_cast<double>(i);
    double value = 1.0;
    switch (type) {
      case WindowType::kHann:
        value = 0.5 - 0.5 * std::cos(2.0 * kPi * n / n_total);
        break;
      case WindowType::kHannSymmetric:
        value = length > 1 ? 0.5 - 0.5 * std::cos(2.0 * kPi * n / sym_denominator) : 1.0;
        break;
      case WindowType::kHamming:
        value = length > 1 ? 0.54 - 0.46 * std::cos(2.0 * kPi * n / sym_denominator) : 1.0;
        break;
      case WindowType::kPovey:
        value = length > 1 ? std::pow(0.5 - 0.5 * std::cos(2.0 * kPi * n / sym_denominator), 0.85)
                           : 1.0;
        break;
      case WindowType::kRectangular:
        value = 1.0;
        break;
    }
    w[i] = static_cast<float>(value);
  }
  return w;
}

struct Stft::Plan {
  fftwf_plan plan = nullptr;
  float* in = nullptr;           // fft_size real samples
  fftwf_complex* out = nullptr;  // fft_size/2+1 complex bins

  explicit Plan(size_t n) {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    in = fftwf_alloc_real(n);
    out = fftwf_alloc_complex(n / 2 + 1);
    if (in != nullptr && out != nullptr) {
      plan = fftwf_plan_dft_r2c_1d(static_cast<int>(n), in, out, FFTW_ESTIMATE);
    }
    if (plan == nullptr) {
      release_locked();
      throw Error("FFTW: cannot create a real FFT plan of size " + std::to_string(n));
    }
  }

  ~Plan() {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    release_locked();
  }

  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

 private:
  void release_locked() {
    if (plan != nullptr) fftwf_destroy_plan(plan);
    if (in != nullptr) fftwf_free(in);
    if (out != nullptr) fftwf_free(out);
    plan = nullptr;
    in = nullptr;
    out = nullptr;
  }
};

Stft::Stft(size_t fft_size) : fft_size_(fft_size) {
  if (fft_size == 0) throw Error("Stft: FFT size must be at least 1");
  if (fft_size > static_cast<size_t>(1) << 30) {
    throw Error("Stft: FFT size " + std::to_string(fft_size) + " is too large");
  }
  plan_ = std::make_unique<Plan>(fft_size);
}

Stft::~Stft() = default;
Stft::Stft(Stft&& other) noexcept = default;
Stft& Stft::operator=(Stft&& other) noexcept = default;

const float* Stft::transform(const float* frame, size_t length) {
  if (length > fft_size_) {
    throw std::invalid_argument("Stft: frame of " + std::to_string(length) +
                                " samples is longer than the FFT size " +
                                std::to_string(fft_size_));
  }
  float* in = plan_->in;
  if (length > 0) std::memcpy(in, frame, length * sizeof(float));
  if (length < fft_size_) std::memset(in + length, 0, (fft_size_ - length) * sizeof(float));
  fftwf_execute_dft_r2c(plan_->plan, in, plan_->out);
  return reinterpret_cast<const float*>(plan_->out);
}

void Stft::power_spectrum(const float* frame, size_t length, float* power) {
  const float* x = transform(frame, length);
  const size_t bins = num_bins();
  for (size_t k = 0; k < bins; ++k) {
    const float re = x[2 * k], im = x[2 * k + 1];
    power[k] = re * re + im * im;
  }
}

void Stft::magnitude_spectrum(const float* frame, size_t length, float* magnitude) {
  const float* x = transform(frame, length);
  const size_t bins = num_bins();
  for (size_t k = 0; k < bins; ++k) {
    const float re = x[2 * k], im = x[2 * k + 1];
    magnitude[k] = std::sqrt(re * re + im * im);
  }
}

void Stft::spectrum(const float* frame, size_t length, std::complex<float>* spectrum) {
  const float* x = transform(frame, length);
  const size_t bins = num_bins();
  for (size_t k = 0; k < bins; ++k) spectrum[k] = std::complex<float>(x[2 * k], x[2 * k + 1]);
}

}  // namespace earmark
