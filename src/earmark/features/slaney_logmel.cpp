#include "earmark/features/slaney_logmel.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "earmark/common/error.h"
#include "earmark/features/stft.h"

namespace earmark {
namespace {

// The Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per
// factor 6.4).
constexpr double kLinearHzPerMel = 200.0 / 3.0;
constexpr double kLogStartHz = 1000.0;
constexpr double kLogStartMel = kLogStartHz / kLinearHzPerMel;  // 15
const double kLogStep = std::log(6.4) / 27.0;

double hz_to_mel(double hz) {
  if (hz >= kLogStartHz) return kLogStartMel + std::log(hz / kLogStartHz) / kLogStep;
  return hz / kLinearHzPerMel;
}

double mel_to_hz(double mel) {
  if (mel >= kLogStartMel) return kLogStartHz * std::exp(kLogStep * (mel - kLogStartMel));
  return kLinearHzPerMel * mel;
}

void check(const SlaneyLogMelOptions& o) {
  const double nyquist = o.sample_rate / 2.0;
  if (o.sample_rate <= 0 || o.fft_size < 2 || o.hop <= 0 || o.mel_bins < 1)
    throw Error("log-mel: the sample rate, FFT size (>= 2), hop and mel bins must be positive");
  if (o.fft_size > (1 << 20) || o.mel_bins > 4096)
    throw Error("log-mel: FFT size above 2^20 or more than 4096 mel bins");
  if (!(o.fmin >= 0 && o.fmin < o.fmax && o.fmax <= nyquist))
    throw Error("log-mel: need 0 <= fmin < fmax <= " + std::to_string(nyquist) + " Hz");
}

}  // namespace

std::vector<float> slaney_mel_filters(const SlaneyLogMelOptions& o) {
  check(o);
  const size_t bins = size_t(o.fft_size) / 2 + 1, mels = size_t(o.mel_bins);
  // Band edges equally spaced in mel, as numpy's linspace lays them out (start + i * step, the
  // last one exactly the end), then back to Hz.
  const size_t edges = mels + 2;
  const double lo = hz_to_mel(o.fmin), hi = hz_to_mel(o.fmax), step = (hi - lo) / double(edges - 1);
  std::vector<double> edge_hz(edges);
  for (size_t i = 0; i < edges; ++i)
    edge_hz[i] = mel_to_hz(i + 1 == edges ? hi : double(i) * step + lo);
  // FFT bin frequencies as numpy's rfftfreq computes them: k * (1 / (n * (1 / sr))).
  const double per_bin = 1.0 / (double(o.fft_size) * (1.0 / double(o.sample_rate)));
  std::vector<float> filters(bins * mels);
  for (size_t m = 0; m < mels; ++m) {
    const double left = edge_hz[m], centre = edge_hz[m + 1], right = edge_hz[m + 2];
    // librosa stores the triangle in float32 first, then scales it by the area norm in double.
    const double area_norm = 2.0 / (right - left);
    for (size_t k = 0; k < bins; ++k) {
      const double f = double(k) * per_bin;
      const double rising = -(left - f) / (centre - left);
      const double falling = (right - f) / (right - centre);
      const float triangle = float(std::max(0.0, std::min(rising, falling)));
      filters[k * mels + m] = float(double(triangle) * area_norm);
    }
  }
  return filters;
}

struct SlaneyLogMel::Impl {
  SlaneyLogMelOptions options;
  std::vector<float> window, filters, padded, frame, power;
  Stft stft;
  explicit Impl(const SlaneyLogMelOptions& o)
      : options(o),
        window(make_window(WindowType::kHann, size_t(o.fft_size))),
        filters(slaney_mel_filters(o)),
        frame(size_t(o.fft_size)),
        power(size_t(o.fft_size) / 2 + 1),
        stft(size_t(o.fft_size)) {}

  // Reflect-pads the signal by half an FFT at each end, mirroring about the edge samples
  // without repeating them.
  void pad(const float* samples, size_t count) {
    const size_t half = size_t(options.fft_size) / 2;
    if (count <= half)
      throw Error("log-mel: " + std::to_string(count) + " samples are too few to reflect-pad by " +
                  std::to_string(half) + " (the FFT size " + std::to_string(options.fft_size) +
                  " needs more than half of it)");
    padded.resize(count + 2 * half);
    for (size_t i = 0; i < half; ++i) padded[i] = samples[half - i];
    std::copy(samples, samples + count, padded.begin() + long(half));
    for (size_t j = 0; j < half; ++j) padded[half + count + j] = samples[count - 2 - j];
  }

  // Power spectrum of frame t of the padded signal into `power`.
  void frame_power(size_t t) {
    const size_t n = size_t(options.fft_size), start = t * size_t(options.hop);
    for (size_t i = 0; i < n; ++i) frame[i] = padded[start + i] * window[i];
    stft.power_spectrum(frame.data(), n, power.data());
  }
};

SlaneyLogMel::SlaneyLogMel(const SlaneyLogMelOptions& options)
    : impl_(std::make_unique<Impl>(options)) {}
SlaneyLogMel::~SlaneyLogMel() = default;
SlaneyLogMel::SlaneyLogMel(SlaneyLogMel&& other) noexcept = default;
SlaneyLogMel& SlaneyLogMel::operator=(SlaneyLogMel&& other) noexcept = default;

const SlaneyLogMelOptions& SlaneyLogMel::options() const { return impl_->options; }
int SlaneyLogMel::mel_bins() const { return impl_->options.mel_bins; }
const std::vector<float>& SlaneyLogMel::mel_filters() const { return impl_->filters; }

void SlaneyLogMel::set_mel_filters(std::vector<float> filters) {
  if (filters.size() != impl_->filters.size())
    throw Error("log-mel: mel filters of " + std::to_string(filters.size()) + " values, need " +
                std::to_string(impl_->filters.size()) + " (" + std::to_string(impl_->power.size()) +
                " x " + std::to_string(impl_->options.mel_bins) + ")");
  impl_->filters = std::move(filters);
}

size_t SlaneyLogMel::num_frames(size_t count) const {
  return 1 + count / size_t(impl_->options.hop);
}

std::vector<float> SlaneyLogMel::power(const float* samples, size_t count) {
  impl_->pad(samples, count);
  const size_t frames = num_frames(count), bins = impl_->power.size();
  std::vector<float> out(frames * bins);
  for (size_t t = 0; t < frames; ++t) {
    impl_->frame_power(t);
    std::copy(impl_->power.begin(), impl_->power.end(), out.begin() + long(t * bins));
  }
  return out;
}

std::vector<float> SlaneyLogMel::compute(const float* samples, size_t count) {
  impl_->pad(samples, count);
  const size_t frames = num_frames(count), bins = impl_->power.size();
  const size_t mels = size_t(impl_->options.mel_bins);
  std::vector<float> out(frames * mels);
  std::vector<double> energy(mels);
  for (size_t t = 0; t < frames; ++t) {
    impl_->frame_power(t);
    std::fill(energy.begin(), energy.end(), 0.0);
    for (size_t k = 0; k < bins; ++k) {
      const double p = impl_->power[k];
      if (p == 0) continue;
      const float* row = impl_->filters.data() + k * mels;
      for (size_t m = 0; m < mels; ++m) energy[m] += p * row[m];
    }
    // In float, as the original: a silent band is then exactly -100 dB.
    for (size_t m = 0; m < mels; ++m)
      out[t * mels + m] = 10.0f * std::log10(std::max(float(energy[m]), 1e-10f));
  }
  return out;
}

}  // namespace earmark
