#include "earmark/features/kaldi_fbank.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>

#include "earmark/common/error.h"

namespace earmark {

namespace {

struct FrameGeometry {
  size_t frame_length = 0;
  size_t frame_shift = 0;
  size_t fft_size = 0;
};

size_t next_power_of_two(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Validates the options that do not depend on the FFT size and derives the frame geometry the way
// torchaudio does (int() truncation of rate * ms * 0.001).
FrameGeometry frame_geometry(const FbankOptions& o) {
  if (o.sample_rate <= 0) {
    throw Error("fbank: sample rate must be positive, got " + std::to_string(o.sample_rate));
  }
  if (!(o.frame_length_ms > 0.0) || !(o.frame_shift_ms > 0.0)) {
    throw Error("fbank: frame length and shift must be positive");
  }
  const double length = double(o.sample_rate) * o.frame_length_ms * 0.001;
  const double shift = double(o.sample_rate) * o.frame_shift_ms * 0.001;
  if (length > double(1 << 24) || shift > double(1 << 24)) {
    throw Error("fbank: frame length/shift is too large");
  }
  FrameGeometry g;
  g.frame_length = static_cast<size_t>(length);
  g.frame_shift = static_cast<size_t>(shift);
  if (g.frame_length < 2) {
    throw Error("fbank: frame length must be at least 2 samples, got " +
                std::to_string(g.frame_length));
  }
  if (g.frame_shift < 1) throw Error("fbank: frame shift must be at least 1 sample");
  g.fft_size = o.round_to_power_of_two ? next_power_of_two(g.frame_length) : g.frame_length;
  if (g.fft_size % 2 != 0) {
    throw Error("fbank: the FFT size must be even, got " + std::to_string(g.fft_size));
  }
  if (!(o.preemphasis >= 0.0 && o.preemphasis <= 1.0)) {
    throw Error("fbank: preemphasis coefficient must lie in [0, 1]");
  }
  return g;
}

// torchaudio's mel_scale on a float32 tensor: 1127 * log(1 + f / 700), all in float32.
float mel_scale_f32(float freq) { return 1127.0f * std::log(1.0f + freq / 700.0f); }

// mel_scale_scalar on a Python float (double).
double mel_scale_f64(double freq) { return 1127.0 * std::log(1.0 + freq / 700.0); }

// One triangular filter restricted to its non-zero weights.
struct SparseFilter {
  size_t first_bin = 0;
  std::vector<float> weights;
};

}  // namespace

std::vector<float> kaldi_mel_banks(const FbankOptions& options, size_t fft_size) {
  if (options.sample_rate <= 0) {
    throw Error("fbank: sample rate must be positive, got " + std::to_string(options.sample_rate));
  }
  if (options.num_mel_bins <= 3) {
    throw Error("fbank: need more than 3 mel bins, got " + std::to_string(options.num_mel_bins));
  }
  if (fft_size < 2 || fft_size % 2 != 0) {
    throw Error("fbank: the FFT size must be even and >= 2, got " + std::to_string(fft_size));
  }
  const size_t num_bins = static_cast<size_t>(options.num_mel_bins);
  const size_t num_fft_bins = fft_size / 2;  // the Nyquist column stays zero
  const double sample_freq = options.sample_rate;
  const double nyquist = 0.5 * sample_freq;
  const double low_freq = options.low_freq;
  double high_freq = options.high_freq;
  if (high_freq <= 0.0) high_freq += nyquist;
  if (!(low_freq >= 0.0 && low_freq < nyquist && high_freq > 0.0 && high_freq <= nyquist &&
        low_freq < high_freq)) {
    throw Error("fbank: bad mel frequency range: low " + std::to_string(low_freq) + " Hz, high " +
                std::to_string(high_freq) + " Hz, Nyquist " + std::to_string(nyquist) + " Hz");
  }

  // Scalars are Python floats (double) in torchaudio; they enter float32 tensor arithmetic as
  // float32, which is what the casts below reproduce.
  const double fft_bin_width = sample_freq / double(fft_size);
  const double mel_low = mel_scale_f64(low_freq);
  const double mel_high = mel_scale_f64(high_freq);
  const double mel_delta = (mel_high - mel_low) / double(num_bins + 1);
  const float mel_low_f = static_cast<float>(mel_low);
  const float mel_delta_f = static_cast<float>(mel_delta);
  const float bin_width_f = static_cast<float>(fft_bin_width);

  std::vector<float> mel(num_fft_bins);
  for (size_t k = 0; k < num_fft_bins; ++k) mel[k] = mel_scale_f32(bin_width_f * float(k));

  const size_t cols = num_fft_bins + 1;
  std::vector<float> banks(num_bins * cols, 0.0f);
  for (size_t b = 0; b < num_bins; ++b) {
    const float left = mel_low_f + float(b) * mel_delta_f;
    const float center = mel_low_f + (float(b) + 1.0f) * mel_delta_f;
    const float right = mel_low_f + (float(b) + 2.0f) * mel_delta_f;
    float* row = banks.data() + b * cols;
    for (size_t k = 0; k < num_fft_bins; ++k) {
      const float up = (mel[k] - left) / (center - left);
      const float down = (right - mel[k]) / (right - center);
      row[k] = std::max(0.0f, std::min(up, down));
    }
  }
  return banks;
}

struct KaldiFbank::Impl {
  FbankOptions options;
  FrameGeometry geometry;
  int num_bins = 0;
  Stft stft;
  std::vector<float> window;
  std::vector<SparseFilter> filters;
  std::vector<float> frame;  // frame_length: DC-removed, pre-emphasised, windowed
  std::vector<float> power;  // fft_size/2+1

  Impl(const FbankOptions& o, const FrameGeometry& g)
      : options(o), geometry(g), num_bins(o.num_mel_bins), stft(g.fft_size) {
    window = make_window(o.window, g.frame_length);
    frame.assign(g.frame_length, 0.0f);
    power.assign(stft.num_bins(), 0.0f);
    const std::vector<float> banks = kaldi_mel_banks(o, g.fft_size);
    const size_t cols = stft.num_bins();
    filters.resize(static_cast<size_t>(num_bins));
    for (size_t b = 0; b < filters.size(); ++b) {
      const float* row = banks.data() + b * cols;
      size_t first = 0;
      while (first < cols && row[first] == 0.0f) ++first;
      size_t last = cols;
      while (last > first && row[last - 1] == 0.0f) --last;
      filters[b].first_bin = first < cols ? first : 0;
      filters[b].weights.assign(row + filters[b].first_bin,
                                row + (first < cols ? last : filters[b].first_bin));
    }
  }
};

KaldiFbank::KaldiFbank(const FbankOptions& options) {
  const FrameGeometry g = frame_geometry(options);
  impl_ = std::make_unique<Impl>(options, g);
}

KaldiFbank::~KaldiFbank() = default;
KaldiFbank::KaldiFbank(KaldiFbank&& other) noexcept = default;
KaldiFbank& KaldiFbank::operator=(KaldiFbank&& other) noexcept = default;

size_t KaldiFbank::frame_length() const { return impl_->geometry.frame_length; }
size_t KaldiFbank::frame_shift() const { return impl_->geometry.frame_shift; }
size_t KaldiFbank::fft_size() const { return impl_->geometry.fft_size; }
int KaldiFbank::num_bins() const { return impl_->num_bins; }

size_t KaldiFbank::num_frames(size_t num_samples) const {
  const size_t length = impl_->geometry.frame_length;
  if (num_samples < length) return 0;
  return 1 + (num_samples - length) / impl_->geometry.frame_shift;
}

void KaldiFbank::compute_frame(const float* samples, float* out) {
  Impl& s = *impl_;
  const size_t n = s.geometry.frame_length;
  float* x = s.frame.data();

  // DC removal: the mean is accumulated in double and applied in float32 like torchaudio.
  float mean = 0.0f;
  if (s.options.remove_dc_offset) {
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += samples[i];
    mean = static_cast<float>(sum / double(n));
  }
  // Pre-emphasis with the replicate-padded previous sample (y[0] = x[0] - c x[0]) and window,
  // walking backwards so that x[i - 1] is still the DC-removed input.
  const float coeff = static_cast<float>(s.options.preemphasis);
  const float* w = s.window.data();
  float prev = samples[n - 1] - mean;
  for (size_t i = n - 1; i > 0; --i) {
    const float cur = prev;
    prev = samples[i - 1] - mean;
    x[i] = (cur - coeff * prev) * w[i];
  }
  x[0] = (prev - coeff * prev) * w[0];

  s.stft.power_spectrum(x, n, s.power.data());

  const float* p = s.power.data();
  for (size_t b = 0; b < s.filters.size(); ++b) {
    const SparseFilter& f = s.filters[b];
    const float* pb = p + f.first_bin;
    double energy = 0.0;
    for (size_t j = 0; j < f.weights.size(); ++j) energy += double(f.weights[j]) * double(pb[j]);
    energy = std::max(energy, double(FLT_EPSILON));
    out[b] = static_cast<float>(std::log(energy));
  }
}

std::vector<float> KaldiFbank::compute(const float* samples, size_t count) {
  const size_t frames = num_frames(count);
  const size_t bins = static_cast<size_t>(impl_->num_bins);
  std::vector<float> out(frames * bins);
  const size_t shift = impl_->geometry.frame_shift;
  for (size_t t = 0; t < frames; ++t) compute_frame(samples + t * shift, out.data() + t * bins);
  return out;
}

std::vector<float> ast_input(const float* fbank, size_t num_frames, size_t num_bins,
                             size_t target_frames) {
  // Same float32 arithmetic as (fbank - (-4.2677393)) / (4.5689974 * 2) in torch.
  const float mean = kAstFbankMean;
  const float scale = kAstFbankStd * 2.0f;
  std::vector<float> out(target_frames * num_bins, (0.0f - mean) / scale);
  const size_t kept = std::min(num_frames, target_frames) * num_bins;
  for (size_t i = 0; i < kept; ++i) out[i] = (fbank[i] - mean) / scale;
  return out;
}

std::vector<float> ast_input_1024(const std::vector<float>& fbank, size_t num_bins) {
  if (num_bins == 0 || fbank.size() % num_bins != 0) {
    throw Error("ast_input_1024: fbank of " + std::to_string(fbank.size()) +
                " values is not a whole number of " + std::to_string(num_bins) + "-bin frames");
  }
  return ast_input(fbank.data(), fbank.size() / num_bins, num_bins, 1024);
}

}  // namespace earmark
