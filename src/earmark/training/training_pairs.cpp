#include "earmark/training/training_pairs.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "earmark/common/checksum.h"
#include "earmark/common/error.h"
#include "earmark/decode/audio_decoder.h"
#include "earmark/features/kaldi_fbank.h"
#include "earmark/training/codec_round_trip.h"
#include "earmark/training/degradations.h"
#include "earmark/training/time_pitch.h"

namespace earmark {

namespace {
constexpr int kRate = 16000;

// splitmix64: independent, well-mixed random streams for (seed, index) without any shared state.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

// ---------------------------------------------------------------- AudioBank

AudioBank AudioBank::load(const std::vector<std::string>& paths, double min_seconds, int threads,
                          const std::string& what) {
  std::vector<std::vector<float>> decoded(paths.size());
  std::atomic<size_t> next{0}, done{0};
  std::mutex log_mutex;
  auto work = [&]() {
    for (size_t i; (i = next++) < paths.size();) {
      try {
        DecodeOptions o;
        o.normalise = true;
        decoded[i] = decode_to_vector(paths[i], o);
      } catch (const Error& e) {
        std::lock_guard<std::mutex> lock(log_mutex);
        spdlog::warn("{}: skipped: {}", what, e.what());
      }
      const size_t d = ++done;
      if (d % 50 == 0 || d == paths.size())
        spdlog::info("{}: decoded {}/{}", what, d, paths.size());
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  AudioBank bank;
  for (size_t i = 0; i < paths.size(); ++i) {
    if (decoded[i].size() < size_t(min_seconds * kRate) || decoded[i].empty()) {
      if (!decoded[i].empty())
        spdlog::debug("{}: {} shorter than {} s", what, paths[i], min_seconds);
      continue;
    }
    bank.add(paths[i], decoded[i]);
  }
  spdlog::info("{}: {} files, {:.2f} h", what, bank.size(), bank.total_seconds() / 3600);
  return bank;
}

void AudioBank::add(const std::string& name, const std::vector<float>& samples) {
  Clip c;
  c.name = name;
  c.samples.resize(samples.size());
  for (size_t i = 0; i < samples.size(); ++i)
    c.samples[i] = int16_t(std::lrint(std::clamp(samples[i], -1.0f, 1.0f) * 32767.0f));
  cumulative_.push_back((cumulative_.empty() ? 0 : cumulative_.back()) + c.samples.size());
  clips_.push_back(std::move(c));
}

double AudioBank::total_seconds() const {
  return cumulative_.empty() ? 0.0 : double(cumulative_.back()) / kRate;
}

void AudioBank::read(size_t i, int64_t begin, size_t count, float* out) const {
  const auto& s = clips_.at(i).samples;
  for (size_t k = 0; k < count; ++k) {
    const int64_t j = begin + int64_t(k);
    out[k] = (j >= 0 && j < int64_t(s.size())) ? s[size_t(j)] / 32768.0f : 0.0f;
  }
}

size_t AudioBank::pick(uint64_t random) const {
  if (clips_.empty()) throw Error("no audio to pick from");
  const uint64_t x = random % cumulative_.back();
  return size_t(std::upper_bound(cumulative_.begin(), cumulative_.end(), x) - cumulative_.begin());
}

// ---------------------------------------------------------------- AugmentationOptions

void AugmentationOptions::validate() const {
  auto prob = [](double p, const char* name) {
    if (!(p >= 0 && p <= 1))
      throw Error(std::string("augmentation: ") + name + " must be in [0, 1]");
  };
  prob(p_tempo_pitch, "p_tempo_pitch");
  prob(p_eq, "p_eq");
  prob(p_reverb, "p_reverb");
  prob(p_noise, "p_noise");
  prob(p_speech, "p_speech");
  prob(p_gain_clip, "p_gain_clip");
  prob(p_codec, "p_codec");
  if (!(max_tempo >= 0 && max_tempo <= 0.3)) throw Error("augmentation: max_tempo in [0, 0.3]");
  if (!(max_semitones >= 0 && max_semitones <= 6))
    throw Error("augmentation: max_semitones in [0, 6]");
  if (!(max_rt60_s >= 0.05 && max_rt60_s <= 3))
    throw Error("augmentation: max_rt60_s in [0.05, 3]");
  if (!(min_snr_db >= -20 && min_snr_db <= max_snr_db && max_snr_db <= 60))
    throw Error("augmentation: SNR range must lie in [-20, 60] dB");
  if (!(max_offset_s >= 0 && max_offset_s <= 0.5))
    throw Error("augmentation: max_offset_s in [0, 0.5]");
}

// ---------------------------------------------------------------- PairGenerator

struct PairGenerator::Impl {
  const AudioBank& music;
  const AudioBank& noise;
  const AudioBank& speech;
  AugmentationOptions options;
  PairShape shape;
  KaldiFbank fbank;
  std::vector<float> context, fb;

  Impl(const AudioBank& m, const AudioBank& n, const AudioBank& s, const AugmentationOptions& o,
       const PairShape& sh)
      : music(m), noise(n), speech(s), options(o), shape(sh) {
    FbankOptions fo;
    fo.num_mel_bins = shape.mel_bins;
    fbank = KaldiFbank(fo);
  }

  void window(const std::vector<float>& audio, int64_t start, float* out) {
    const size_t n = shape.window_samples();
    std::vector<float> w(n, 0.0f);
    for (size_t k = 0; k < n; ++k) {
      const int64_t j = start + int64_t(k);
      if (j >= 0 && j < int64_t(audio.size())) w[k] = audio[size_t(j)];
    }
    fb = fbank.compute(w.data(), n);
    std::memcpy(out, fb.data(), shape.values() * sizeof(float));
  }

  void background(const AudioBank& bank, std::vector<float>& signal, double snr_db,
                  std::mt19937_64& rng) {
    if (bank.size() == 0) return;
    const size_t clip = bank.pick(rng());
    const size_t len = bank.length(clip), n = signal.size();
    if (len <= n) {  // a short sound, looped from a random point
      std::vector<float> bg(len);
      bank.read(clip, 0, len, bg.data());
      mix_at_snr(signal, bg, snr_db, size_t(rng() % len));
    } else {
      std::vector<float> bg(n);
      bank.read(clip, int64_t(rng() % (len - n + 1)), n, bg.data());
      mix_at_snr(signal, bg, snr_db);
    }
  }
};

PairGenerator::PairGenerator(const AudioBank& music, const AudioBank& noise,
                             const AudioBank& speech, const AugmentationOptions& options,
                             const PairShape& shape)
    : impl_(std::make_unique<Impl>(music, noise, speech, options, shape)) {
  options.validate();
  if (music.size() == 0) throw Error("training: no music to make pairs from");
}

PairGenerator::~PairGenerator() = default;

void PairGenerator::make(uint64_t seed, uint64_t index, float* anchor, float* positive,
                         PairRecipe* recipe) {
  Impl& m = *impl_;
  const AugmentationOptions& o = m.options;
  std::mt19937_64 rng(mix(seed * 0x100000001b3ULL ^ mix(index)));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto range = [&](double lo, double hi) { return lo + (hi - lo) * u(rng); };
  PairRecipe r;

  // The anchor: a window of a clip (weighted by length), where the window fits.
  const int64_t wn = int64_t(m.shape.window_samples());
  r.clip = m.music.pick(rng());
  const int64_t len = int64_t(m.music.length(r.clip));
  r.start = len > wn ? int64_t(rng() % uint64_t(len - wn)) : 0;

  // Context around it for the degradations: reverb tails, codec frames and tempo change reach
  // beyond the window.
  const int64_t margin = kRate / 2;
  const int64_t ctx_begin = r.start - margin;
  std::vector<float> ctx(size_t(wn + 2 * margin));
  m.music.read(r.clip, ctx_begin, ctx.size(), ctx.data());
  m.window(ctx, margin, anchor);

  // Where the anchor's centre is in the degraded context (moves with a tempo change).
  double centre = double(margin + wn / 2);
  if (u(rng) < o.p_tempo_pitch) {
    const int which = int(rng() % 3);  // tempo, pitch, or both
    r.speed = which != 1 ? 1.0 + range(-o.max_tempo, o.max_tempo) : 1.0;
    r.semitones = which != 0 ? range(-o.max_semitones, o.max_semitones) : 0.0;
    ctx = change_tempo_and_pitch(ctx, r.speed, r.semitones, kRate);
    centre /= r.speed;
  }
  if (u(rng) < o.p_eq) {
    r.eq = true;
    const int kind = int(rng() % 4);
    if (kind == 0) Biquad::lowpass(range(2500, 7000), 0.707, kRate).apply(ctx);
    if (kind == 1) Biquad::highpass(range(100, 600), 0.707, kRate).apply(ctx);
    if (kind == 2) {  // telephone-like band
      Biquad::highpass(range(250, 450), 0.707, kRate).apply(ctx);
      Biquad::lowpass(range(3000, 3800), 0.707, kRate).apply(ctx);
    }
    if (kind == 3) {
      Biquad::low_shelf(range(80, 300), range(-12, 12), kRate).apply(ctx);
      Biquad::high_shelf(range(2000, 6000), range(-12, 12), kRate).apply(ctx);
      Biquad::peaking(range(300, 5000), range(0.5, 3), range(-12, 12), kRate).apply(ctx);
    }
  }
  if (u(rng) < o.p_reverb) {
    r.reverb = true;
    apply_reverb(ctx, range(0.15, o.max_rt60_s), range(0.2, 1.5), rng(), kRate);
  }
  const bool noise = u(rng) < o.p_noise && m.noise.size() > 0;
  const bool speech = u(rng) < o.p_speech && m.speech.size() > 0;
  if (noise || speech) {
    // Two backgrounds share the SNR budget.
    const double snr = range(o.min_snr_db, o.max_snr_db) + (noise && speech ? 3.0 : 0.0);
    if (noise) m.background(m.noise, ctx, snr, rng);
    if (speech) m.background(m.speech, ctx, snr, rng);
    r.noise = noise;
    r.speech = speech;
  }
  if (u(rng) < o.p_gain_clip) {
    r.gain_clip = true;
    // Level the context first so the gain decides how much is clipped.
    const double p = mean_power(ctx.data(), ctx.size());
    if (p > 0) {
      const float g = float(0.1 / std::sqrt(p));
      for (float& x : ctx) x *= g;
    }
    apply_gain_and_clip(ctx, range(6, 20));
  }
  if (u(rng) < o.p_codec) {
    struct Setting {
      Codec codec;
      int bitrate;
    };
    static const Setting settings[] = {{Codec::kMp3, 32000},
                                       {Codec::kMp3, 64000},
                                       {Codec::kAac, 48000},
                                       {Codec::kOpus, 16000},
                                       {Codec::kOpus, 32000}};
    const Setting& s = settings[rng() % 5];
    r.codec = std::string(codec_name(s.codec)) + "_" + std::to_string(s.bitrate / 1000) + "k";
    // Codecs clip at full scale: keep the level where a real file would have it.
    float peak = 0;
    for (float x : ctx) peak = std::max(peak, std::abs(x));
    if (peak > 1.0f)
      for (float& x : ctx) x /= peak;
    ctx = codec_round_trip(ctx, s.codec, s.bitrate, kRate);
  }
  r.offset_s = range(-o.max_offset_s, o.max_offset_s);
  const int64_t start = int64_t(std::lround(centre - wn / 2 + r.offset_s * kRate));
  m.window(ctx, start, positive);
  if (recipe) *recipe = r;
}

// ---------------------------------------------------------------- pair cache

PairCache build_pair_cache(const std::string& path, const AudioBank& music, const AudioBank& noise,
                           const AudioBank& speech, const AugmentationOptions& options,
                           const PairShape& shape, uint64_t seed, size_t count, int threads) {
  // What makes the pairs: options, shape and which audio (names and lengths).
  std::string recipe = std::to_string(options.p_tempo_pitch) + std::to_string(options.max_tempo) +
                       std::to_string(options.max_semitones) + std::to_string(options.p_eq) +
                       std::to_string(options.p_reverb) + std::to_string(options.max_rt60_s) +
                       std::to_string(options.p_noise) + std::to_string(options.p_speech) +
                       std::to_string(options.min_snr_db) + std::to_string(options.max_snr_db) +
                       std::to_string(options.p_gain_clip) + std::to_string(options.p_codec) +
                       std::to_string(options.max_offset_s);
  for (const AudioBank* b : {&music, &noise, &speech})
    for (size_t i = 0; i < b->size(); ++i) recipe += b->name(i) + std::to_string(b->length(i));
  PairCacheKey key;
  key.seed = seed;
  key.count = count;
  key.shape = shape;
  key.recipe_hash = fnv1a(kFnvSeed, recipe.data(), recipe.size());
  PairCache cache;
  if (!path.empty() && PairCache::read_if(path, key, cache)) {
    spdlog::info("training pairs: {} read from {}", count, path);
    return cache;
  }
  if (!path.empty() && std::filesystem::exists(path))
    spdlog::warn("training pairs: {} holds other pairs or is damaged; making them again", path);

  cache = PairCache(key);
  std::atomic<size_t> next{0}, done{0};
  std::atomic<bool> failed{false};
  std::string failure;
  std::mutex mutex;
  const auto t0 = std::chrono::steady_clock::now();
  auto work = [&]() {
    try {
      PairGenerator gen(music, noise, speech, options, shape);
      std::vector<float> a(shape.values()), p(shape.values());
      for (size_t i; !failed && (i = next++) < count;) {
        gen.make(seed, i, a.data(), p.data());
        cache.set(i, a.data(), p.data());
        const size_t d = ++done;
        if (d % 2000 == 0 || d == count) {
          const double s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          spdlog::info("training pairs: {}/{} ({:.0f}/s)", d, count, d / std::max(s, 1e-9));
        }
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mutex);
      failed = true;
      failure = e.what();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  if (failed) throw Error("training pairs: " + failure);

  if (!path.empty()) cache.write(path);
  return cache;
}

}  // namespace earmark
