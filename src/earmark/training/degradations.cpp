#include "earmark/training/degradations.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <random>

#include "earmark/features/stft.h"

namespace earmark {

namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

double mean_power(const float* samples, size_t count) {
  if (count == 0) return 0;
  double sum = 0;
  for (size_t i = 0; i < count; ++i) sum += double(samples[i]) * samples[i];
  return sum / count;
}

void mix_at_snr(std::vector<float>& signal, const std::vector<float>& background, double snr_db,
                size_t background_offset) {
  if (signal.empty() || background.empty()) return;
  const size_t n = signal.size(), m = background.size();
  double bg_power = 0;
  for (size_t i = 0; i < n; ++i) {
    const double b = background[(background_offset + i) % m];
    bg_power += b * b;
  }
  bg_power /= n;
  const double power = mean_power(signal.data(), n);
  if (power <= 0 || bg_power <= 0) return;
  const float scale = float(std::sqrt(power / (bg_power * std::pow(10.0, snr_db / 10.0))));
  for (size_t i = 0; i < n; ++i) signal[i] += scale * background[(background_offset + i) % m];
}

void apply_gain_and_clip(std::vector<float>& signal, double gain_db) {
  const float g = float(std::pow(10.0, gain_db / 20.0));
  for (float& x : signal) x = std::clamp(x * g, -1.0f, 1.0f);
}

namespace {
Biquad normalised(double b0, double b1, double b2, double a0, double a1, double a2) {
  Biquad q;
  q.b0 = b0 / a0;
  q.b1 = b1 / a0;
  q.b2 = b2 / a0;
  q.a1 = a1 / a0;
  q.a2 = a2 / a0;
  return q;
}
}  // namespace

Biquad Biquad::lowpass(double hz, double q, int rate) {
  const double w = 2 * kPi * hz / rate, c = std::cos(w), alpha = std::sin(w) / (2 * q);
  return normalised((1 - c) / 2, 1 - c, (1 - c) / 2, 1 + alpha, -2 * c, 1 - alpha);
}

Biquad Biquad::highpass(double hz, double q, int rate) {
  const double w = 2 * kPi * hz / rate, c = std::cos(w), alpha = std::sin(w) / (2 * q);
  return normalised((1 + c) / 2, -(1 + c), (1 + c) / 2, 1 + alpha, -2 * c, 1 - alpha);
}

Biquad Biquad::peaking(double hz, double q, double gain_db, int rate) {
  const double a = std::pow(10.0, gain_db / 40), w = 2 * kPi * hz / rate, c = std::cos(w);
  const double alpha = std::sin(w) / (2 * q);
  return normalised(1 + alpha * a, -2 * c, 1 - alpha * a, 1 + alpha / a, -2 * c, 1 - alpha / a);
}

Biquad Biquad::low_shelf(double hz, double gain_db, int rate) {
  const double a = std::pow(10.0, gain_db / 40), w = 2 * kPi * hz / rate, c = std::cos(w);
  const double alpha = std::sin(w) / 2 * std::sqrt(2.0), sa = 2 * std::sqrt(a) * alpha;
  return normalised(a * ((a + 1) - (a - 1) * c + sa), 2 * a * ((a - 1) - (a + 1) * c),
                    a * ((a + 1) - (a - 1) * c - sa), (a + 1) + (a - 1) * c + sa,
                    -2 * ((a - 1) + (a + 1) * c), (a + 1) + (a - 1) * c - sa);
}

Biquad Biquad::high_shelf(double hz, double gain_db, int rate) {
  const double a = std::pow(10.0, gain_db / 40), w = 2 * kPi * hz / rate, c = std::cos(w);
  const double alpha = std::sin(w) / 2 * std::sqrt(2.0), sa = 2 * std::sqrt(a) * alpha;
  return normalised(a * ((a + 1) + (a - 1) * c + sa), -2 * a * ((a - 1) + (a + 1) * c),
                    a * ((a + 1) + (a - 1) * c - sa), (a + 1) - (a - 1) * c + sa,
                    2 * ((a - 1) - (a + 1) * c), (a + 1) - (a - 1) * c - sa);
}

void Biquad::apply(std::vector<float>& signal) const {
  double x1 = 0, x2 = 0, y1 = 0, y2 = 0;
  for (float& s : signal) {
    const double x = s;
    const double y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
    x2 = x1;
    x1 = x;
    y2 = y1;
    y1 = y;
    s = float(y);
  }
}

void apply_reverb(std::vector<float>& signal, double rt60_s, double wet, uint64_t seed, int rate) {
  if (signal.empty() || wet <= 0 || rt60_s <= 0) return;
  // The tail: decaying noise from 2 ms on, 60 dB down at rt60, cut at rt60.
  const size_t tail = std::max<size_t>(8, size_t(rt60_s * rate));
  std::vector<float> ir(tail, 0.0f);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  const double decay = std::log(1000.0) / (rt60_s * rate);
  const size_t start = std::min<size_t>(tail - 1, size_t(0.002 * rate));
  double energy = 0;
  for (size_t i = start; i < tail; ++i) {
    ir[i] = noise(rng) * float(std::exp(-decay * double(i)));
    energy += double(ir[i]) * ir[i];
  }
  // Unit-energy tail, so `wet` is the reverberant-to-direct energy ratio.
  const float norm = energy > 0 ? float(1.0 / std::sqrt(energy)) : 0.0f;
  for (float& v : ir) v *= norm;

  const size_t n = signal.size(), full = n + tail - 1;
  size_t fft = 1;
  while (fft < full) fft <<= 1;
  std::vector<float> a(fft, 0.0f), b(fft, 0.0f);
  std::vector<fftwf_complex> fa(fft / 2 + 1), fb(fft / 2 + 1);
  std::copy(signal.begin(), signal.end(), a.begin());
  std::copy(ir.begin(), ir.end(), b.begin());
  fftwf_plan pa, pb, pinv;
  {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    pa = fftwf_plan_dft_r2c_1d(int(fft), a.data(), fa.data(), FFTW_ESTIMATE);
    pb = fftwf_plan_dft_r2c_1d(int(fft), b.data(), fb.data(), FFTW_ESTIMATE);
    pinv = fftwf_plan_dft_c2r_1d(int(fft), fa.data(), a.data(), FFTW_ESTIMATE);
  }
  fftwf_execute(pa);
  fftwf_execute(pb);
  for (size_t k = 0; k < fa.size(); ++k) {
    const float re = fa[k][0] * fb[k][0] - fa[k][1] * fb[k][1];
    const float im = fa[k][0] * fb[k][1] + fa[k][1] * fb[k][0];
    fa[k][0] = re;
    fa[k][1] = im;
  }
  fftwf_execute(pinv);
  {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    fftwf_destroy_plan(pa);
    fftwf_destroy_plan(pb);
    fftwf_destroy_plan(pinv);
  }
  const float g = float(std::sqrt(wet)) / float(fft);
  for (size_t i = 0; i < n; ++i) signal[i] += g * a[i];
}

}  // namespace earmark
