#include "earmark/features/stft.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <thread>
#include <vector>

#include "earmark/common/error.h"

namespace earmark {
namespace {

constexpr double kPi = 3.14159265358979323846;

TEST(StftWindow, HannPeriodic) {
  const auto w = make_window(WindowType::kHann, 8);
  ASSERT_EQ(w.size(), 8u);
  EXPECT_FLOAT_EQ(w[0], 0.0f);
  EXPECT_FLOAT_EQ(w[2], 0.5f);
  EXPECT_FLOAT_EQ(w[4], 1.0f);  // peak at N/2, no sample at N
  EXPECT_FLOAT_EQ(w[1], float(0.5 - 0.5 * std::cos(2 * kPi / 8)));
  EXPECT_FLOAT_EQ(w[7], w[1]);
}

TEST(StftWindow, HannSymmetricAsKaldi) {
  const auto w = make_window(WindowType::kHannSymmetric, 400);
  ASSERT_EQ(w.size(), 400u);
  EXPECT_FLOAT_EQ(w[0], 0.0f);
  EXPECT_FLOAT_EQ(w[399], 0.0f);
  EXPECT_FLOAT_EQ(w[1], float(0.5 - 0.5 * std::cos(2 * kPi / 399)));
  EXPECT_FLOAT_EQ(w[100], float(0.5 - 0.5 * std::cos(2 * kPi * 100 / 399)));
  for (size_t i = 0; i < 400; ++i) EXPECT_FLOAT_EQ(w[i], w[399 - i]);
  const auto w5 = make_window(WindowType::kHannSymmetric, 5);
  EXPECT_FLOAT_EQ(w5[2], 1.0f);
  EXPECT_FLOAT_EQ(w5[1], 0.5f);
}

TEST(StftWindow, HammingPoveyRectangular) {
  const auto h = make_window(WindowType::kHamming, 5);
  EXPECT_NEAR(h[0], 0.08f, 1e-7);
  EXPECT_NEAR(h[1], 0.54f, 1e-7);
  EXPECT_NEAR(h[2], 1.0f, 1e-7);
  EXPECT_NEAR(h[4], 0.08f, 1e-7);
  const auto p = make_window(WindowType::kPovey, 400);
  EXPECT_FLOAT_EQ(p[0], 0.0f);
  EXPECT_FLOAT_EQ(p[50], float(std::pow(0.5 - 0.5 * std::cos(2 * kPi * 50 / 399), 0.85)));
  const auto p5 = make_window(WindowType::kPovey, 5);
  EXPECT_FLOAT_EQ(p5[1], float(std::pow(0.5, 0.85)));
  const auto r = make_window(WindowType::kRectangular, 7);
  for (float v : r) EXPECT_EQ(v, 1.0f);
  EXPECT_TRUE(make_window(WindowType::kHann, 0).empty());
  EXPECT_EQ(make_window(WindowType::kHannSymmetric, 1), std::vector<float>{1.0f});
}

TEST(StftPower, SinePeakAndParseval) {
  const size_t n = 512;
  Stft stft(n);
  EXPECT_EQ(stft.fft_size(), n);
  ASSERT_EQ(stft.num_bins(), 257u);
  // Bin-centred sine (k = 37): all energy in one bin, |X| = A N / 2.
  std::vector<float> x(n), power(stft.num_bins());
  for (size_t i = 0; i < n; ++i) x[i] = 0.8f * float(std::sin(2 * kPi * 37 * double(i) / n));
  stft.power_spectrum(x.data(), n, power.data());
  const size_t peak = size_t(std::max_element(power.begin(), power.end()) - power.begin());
  EXPECT_EQ(peak, 37u);
  EXPECT_NEAR(std::sqrt(power[37]), 0.8 * n / 2, 1e-2);

  // Off-centre windowed sine, zero-padded frame: peak at the nearest bin.
  const size_t len = 400;
  const auto w = make_window(WindowType::kHann, len);
  const double freq = 1000.0, sr = 16000.0;  // bin 1000 / 31.25 = 32
  for (size_t i = 0; i < len; ++i) x[i] = float(std::sin(2 * kPi * freq * double(i) / sr)) * w[i];
  stft.power_spectrum(x.data(), len, power.data());
  EXPECT_EQ(size_t(std::max_element(power.begin(), power.end()) - power.begin()), 32u);

  // Parseval on noise-like data: sum x^2 = (1/N) (|X0|^2 + 2 sum_{1..N/2-1} |Xk|^2 + |X_{N/2}|^2)
  uint32_t state = 12345;
  double time_energy = 0.0;
  for (size_t i = 0; i < n; ++i) {
    state = state * 1664525u + 1013904223u;
    x[i] = float(int32_t(state >> 8) - (1 << 23)) / float(1 << 23);
    time_energy += double(x[i]) * x[i];
  }
  stft.power_spectrum(x.data(), n, power.data());
  double freq_energy = power[0] + power[n / 2];
  for (size_t k = 1; k < n / 2; ++k) freq_energy += 2.0 * power[k];
  freq_energy /= double(n);
  EXPECT_NEAR(freq_energy / time_energy, 1.0, 1e-5);

  // Magnitude and complex spectrum agree with the power spectrum.
  std::vector<float> mag(stft.num_bins());
  std::vector<std::complex<float>> spec(stft.num_bins());
  stft.magnitude_spectrum(x.data(), n, mag.data());
  stft.spectrum(x.data(), n, spec.data());
  for (size_t k = 0; k < stft.num_bins(); ++k) {
    EXPECT_NEAR(double(mag[k]) * mag[k], power[k], 1e-4 * (1.0 + power[k]));
    EXPECT_NEAR(std::norm(spec[k]), power[k], 1e-4 * (1.0 + power[k]));
  }
  double dc = 0.0;
  for (size_t i = 0; i < n; ++i) dc += x[i];
  EXPECT_NEAR(spec[0].real(), dc, 1e-3);
  EXPECT_EQ(spec[0].imag(), 0.0f);
}

TEST(StftPower, ZeroPaddingAndErrors) {
  Stft stft(16);
  std::vector<float> x(16, 0.0f), power(9);
  x[0] = 1.0f;  // impulse: flat spectrum even with a short frame (rest zero-padded)
  stft.power_spectrum(x.data(), 1, power.data());
  for (float p : power) EXPECT_FLOAT_EQ(p, 1.0f);
  stft.power_spectrum(x.data(), 0, power.data());
  for (float p : power) EXPECT_EQ(p, 0.0f);
  EXPECT_THROW(stft.power_spectrum(x.data(), 17, power.data()), std::invalid_argument);
  EXPECT_THROW(Stft(0), Error);

  Stft odd(15);  // non power of two sizes work too
  EXPECT_EQ(odd.num_bins(), 8u);
  Stft moved(std::move(stft));
  moved.power_spectrum(x.data(), 16, power.data());
  EXPECT_FLOAT_EQ(power[3], 1.0f);
}

TEST(StftPower, ConcurrentObjects) {
  // Plans are created/destroyed from several threads at once; each thread owns its Stft.
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &ok] {
      bool good = true;
      for (int rep = 0; rep < 50; ++rep) {
        const size_t n = size_t(64) << (rep % 4);
        Stft stft(n);
        std::vector<float> x(n), power(stft.num_bins());
        const size_t k = size_t(3 + t);
        for (size_t i = 0; i < n; ++i) x[i] = float(std::cos(2 * kPi * k * double(i) / n));
        stft.power_spectrum(x.data(), n, power.data());
        good = good && size_t(std::max_element(power.begin(), power.end()) - power.begin()) == k;
      }
      ok[t] = good ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  for (int v : ok) EXPECT_EQ(v, 1);
}

}  // namespace
}  // namespace earmark
