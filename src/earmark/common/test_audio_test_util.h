#pragma once
// Shared helpers for the test suite (header-only, so it stays out of the library): temporary
// directories, a tiny WAV writer, a deterministic synthetic "music" generator, and helpers to run
// external tools (ffmpeg, rubberband, the earmark CLI) and capture their output.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace earmark {
namespace testutil {

constexpr double kPi = 3.14159265358979323846;
constexpr int kRate = 16000;

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/earmark-test-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    // Restore permissions a test may have removed so that everything can be deleted.
    for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
         !ec && it != std::filesystem::end(it); it.increment(ec)) {
      std::error_code ec2;
      if (it->is_directory(ec2))
        std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all,
                                     std::filesystem::perm_options::add, ec2);
    }
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// 16-bit PCM mono WAV.
inline void write_wav(const std::string& path, const std::vector<float>& x, int rate = kRate) {
  auto put = [](std::string& s, uint32_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
  };
  std::string s = "RIFF";
  const uint32_t data_bytes = uint32_t(x.size() * 2);
  put(s, 36 + data_bytes, 4);
  s += "WAVEfmt ";
  put(s, 16, 4);
  put(s, 1, 2);  // PCM
  put(s, 1, 2);  // mono
  put(s, uint32_t(rate), 4);
  put(s, uint32_t(rate * 2), 4);
  put(s, 2, 2);
  put(s, 16, 2);
  s += "data";
  put(s, data_bytes, 4);
  for (float v : x) {
    long q = std::lround(std::clamp(v, -1.0f, 1.0f) * 32767.0f);
    put(s, uint32_t(uint16_t(int16_t(q))), 2);
  }
  write_file(path, s);
}

// Deterministic random numbers that do not depend on the standard library's distributions.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(uint32_t(seed * 2654435761u + 12345u)) {}
  double uniform() { return (gen_() >> 5) * (1.0 / 134217728.0); }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int below(int n) { return int(uniform() * n); }
  double normal() {
    double u1 = std::max(uniform(), 1e-12), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * kPi * u2);
  }

 private:
  std::mt19937 gen_;
};

// A deterministic piece of synthetic "music": random note sequences (random pitches and
// durations, no fixed grid) played by two or three instruments with their own harmonic spectra,
// slight inharmonicity and vibrato, amplitude envelopes, plus percussive noise bursts at random
// times. Different seeds give unrelated pieces. Peak level 0.8.
inline std::vector<float> synth_music(uint64_t seed, double seconds, int rate = kRate) {
  Rng rng(seed);
  const size_t n = size_t(seconds * rate);
  std::vector<double> y(n, 0.0);
  struct Instrument {
    int harmonics;
    double amp[12];
    double inharmonicity;
    double vibrato_hz, vibrato_depth;  // depth in semitones
    double decay;                      // envelope decay rate, 1/s
    double low, high;                  // pitch range (MIDI)
    double level;
    double min_dur, max_dur;
  };
  auto make_instrument = [&](double low, double high, double level) {
    Instrument in;
    in.harmonics = 4 + rng.below(8);
    const double tilt = 0.6 + 0.9 * rng.uniform();
    for (int h = 0; h < 12; ++h) {
      const double u = rng.uniform();
      in.amp[h] = (0.2 + u * u) / std::pow(h + 1.0, tilt);
    }
    in.inharmonicity = rng.uniform() < 0.5 ? 0.0 : rng.uniform(0, 4e-4);
    in.vibrato_hz = rng.uniform(3.5, 6.5);
    in.vibrato_depth = rng.uniform() < 0.4 ? 0.0 : rng.uniform(0.02, 0.12);
    in.decay = rng.uniform(0.8, 6.0);
    in.low = low;
    in.high = high;
    in.level = level;
    in.min_dur = rng.uniform(0.1, 0.25);
    in.max_dur = in.min_dur + rng.uniform(0.2, 0.7);
    return in;
  };
  auto add_note = [&](const Instrument& in, double t0, double dur, double midi, double amp) {
    const double f0 = 440.0 * std::pow(2.0, (midi - 69.0) / 12.0);
    const size_t i0 = size_t(t0 * rate);
    const size_t len = size_t(dur * rate);
    // Partials as rotating phasors; the vibrato updates their rotation every 16 samples.
    double re[12], im[12], stretch[12];
    int partials = 0;
    for (int h = 0; h < in.harmonics; ++h) {
      const double ph = rng.uniform(0, 2 * kPi);
      re[h] = std::cos(ph);
      im[h] = std::sin(ph);
      const double k = h + 1;
      stretch[h] = k * std::sqrt(1.0 + in.inharmonicity * k * k);
      if (f0 * stretch[h] < rate * 0.45) partials = h + 1;
    }
    const double vib_phase = rng.uniform();
    const double decay_step = std::exp(-in.decay / rate);
    double env = 1.0;
    for (size_t b = 0; b < len && i0 + b < n; b += 16) {
      const double tb = (double(b) + 8) / rate;
      const double vib = in.vibrato_depth * std::sin(2 * kPi * (vib_phase + in.vibrato_hz * tb)) *
                         std::min(1.0, tb * 4);
      const double f = f0 * std::pow(2.0, vib / 12.0);
      double rr[12], ri[12];
      for (int h = 0; h < partials; ++h) {
        const double w = 2 * kPi * f * stretch[h] / rate;
        rr[h] = std::cos(w);
        ri[h] = std::sin(w);
        const double norm = 1.0 / std::sqrt(re[h] * re[h] + im[h] * im[h]);
        re[h] *= norm;
        im[h] *= norm;
      }
      for (size_t i = b; i < b + 16 && i < len && i0 + i < n; ++i) {
        const double t = double(i) / rate;
        double e = t < 0.008 ? t / 0.008 : (env *= decay_step);
        const double release = dur - t;
        if (release < 0.03) e *= std::max(0.0, release / 0.03);
        double v = 0;
        for (int h = 0; h < partials; ++h) {
          v += in.amp[h] * im[h];
          const double nr = re[h] * rr[h] - im[h] * ri[h];
          im[h] = re[h] * ri[h] + im[h] * rr[h];
          re[h] = nr;
        }
        y[i0 + i] += amp * e * v;
      }
    }
  };
  // Lead, accompaniment and bass, each a random walk over its own pitch range.
  const double centre = rng.uniform(-4, 4);
  std::vector<Instrument> band = {make_instrument(60 + centre, 86 + centre, 0.30),
                                  make_instrument(50 + centre, 74 + centre, 0.22),
                                  make_instrument(36 + centre, 55 + centre, 0.30)};
  if (rng.uniform() < 0.3) band.pop_back();
  for (const Instrument& in : band) {
    double midi = rng.uniform(in.low, in.high);
    for (double t = rng.uniform(0, 0.3); t < seconds;) {
      const double dur = rng.uniform(in.min_dur, in.max_dur);
      midi += std::round(rng.normal() * 3.0);
      if (midi < in.low) midi += 12;
      if (midi > in.high) midi -= 12;
      if (rng.uniform() < 0.88) add_note(in, t, dur * 1.2, midi, in.level * rng.uniform(0.6, 1));
      t += dur;
    }
  }
  // Percussion: short noise bursts at random times, some bright (hi-hat), some full (snare).
  for (double t = rng.uniform(0, 0.5); t < seconds; t += rng.uniform(0.12, 0.6)) {
    const bool snare = rng.uniform() < 0.3;
    const double amp = snare ? 0.12 : 0.035;
    const double decay = snare ? 25.0 : 60.0;
    const size_t i0 = size_t(t * rate), len = size_t(0.15 * rate);
    double prev = 0;
    for (size_t i = 0; i < len && i0 + i < n; ++i) {
      const double w = rng.uniform(-1, 1);
      const double hp = w - prev;  // brighten the noise a little
      prev = w;
      y[i0 + i] += amp * std::exp(-decay * double(i) / rate) * (snare ? w : hp);
    }
  }
  double peak = 1e-9;
  for (double v : y) peak = std::max(peak, std::fabs(v));
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = float(0.8 * y[i] / peak);
  return out;
}

// Adds a bell-like note from `onset_s` to the end of x: five harmonics, slightly stretched, whose
// partials ring on after the attack and decay at `decay` per second.
inline void add_bell_note(std::vector<float>& x, double onset_s, double midi, double amplitude,
                          double decay, int rate = kRate) {
  const double f0 = 440.0 * std::pow(2.0, (midi - 69.0) / 12.0);
  for (size_t i = size_t(onset_s * rate); i < x.size(); ++i) {
    const double t = double(i) / rate - onset_s;
    double v = 0;
    for (int h = 1; h <= 5; ++h) v += std::sin(2 * kPi * f0 * h * 1.003 * t) / h;
    x[i] += float(amplitude * v * std::exp(-decay * t));
  }
}

// A one-second notification sound: three bell-like notes whose partials ring on after their
// attack, so nearly all of its spectral peaks sit at three instants.
inline std::vector<float> notification_sound(double first_midi = 76.0) {
  std::vector<float> x(kRate, 0.0f);
  add_bell_note(x, 0.0, first_midi, 0.25, 5.0);
  add_bell_note(x, 0.18, first_midi + 7, 0.25, 5.0);
  add_bell_note(x, 0.36, first_midi + 12, 0.25, 5.0);
  return x;
}

// Gaussian white noise of the given RMS level.
inline std::vector<float> white_noise(uint64_t seed, size_t n, double rms) {
  Rng rng(seed ^ 0x9e3779b9u);
  std::vector<float> out(n);
  for (float& v : out) v = float(rms * rng.normal());
  return out;
}

inline double rms(const std::vector<float>& x) {
  double s = 0;
  for (float v : x) s += double(v) * v;
  return x.empty() ? 0.0 : std::sqrt(s / x.size());
}

// A two-second sound logo: a short melody of bell-like notes (partials that ring on after the
// attack), different for each seed.
inline std::vector<float> chime(uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(2 * kRate, 0.0f);
  double midi = 72 + rng.below(8);
  for (int k = 0; k < 6; ++k) {
    add_bell_note(x, 0.3 * k + rng.uniform(0, 0.05), midi, 0.2, 4.0);
    midi += rng.below(2) ? 2 + rng.below(4) : -(2 + rng.below(4));
  }
  return x;
}

// Background scaled so that `logo` sits `ratio_db` above it where it is mixed in, at each start.
inline std::vector<float> mix_logo(const std::vector<float>& background,
                                   const std::vector<float>& logo,
                                   const std::vector<double>& starts_s, double ratio_db) {
  std::vector<float> out = background;
  const size_t at0 = size_t(starts_s.front() * kRate);
  std::vector<float> under(background.begin() + at0, background.begin() + at0 + logo.size());
  const double gain = rms(logo) / std::max(1e-9, rms(under)) / std::pow(10.0, ratio_db / 20.0);
  for (float& v : out) v = float(v * gain);
  for (double s : starts_s) {
    const size_t at = size_t(s * kRate);
    for (size_t i = 0; i < logo.size() && at + i < out.size(); ++i) out[at + i] += logo[i];
  }
  return out;
}

// x plus white noise at the given signal-to-noise ratio (dB).
inline std::vector<float> add_noise(const std::vector<float>& x, double snr_db, uint64_t seed) {
  const double noise_rms = rms(x) / std::pow(10.0, snr_db / 20.0);
  std::vector<float> noise = white_noise(seed, x.size(), noise_rms);
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] + noise[i];
  return out;
}

inline std::vector<float> slice(const std::vector<float>& x, double start_s, double seconds,
                                int rate = kRate) {
  const size_t a = std::min(x.size(), size_t(start_s * rate));
  const size_t b = std::min(x.size(), a + size_t(seconds * rate));
  return std::vector<float>(x.begin() + a, x.begin() + b);
}

inline void append(std::vector<float>& x, const std::vector<float>& y) {
  x.insert(x.end(), y.begin(), y.end());
}

// Single-quoted for /bin/sh.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

// Exit status of a shell command (-1 if it did not exit normally).
inline int run_status(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  if (rc == -1 || !WIFEXITED(rc)) return -1;
  return WEXITSTATUS(rc);
}

inline bool have_tool(const std::string& name) {
  return run_status("command -v " + name + " >/dev/null 2>&1") == 0;
}

struct CommandResult {
  int status = -1;  // exit code, -1 when killed by a signal
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs a shell command, capturing stdout and stderr separately.
inline CommandResult run_capture(const std::string& cmd, const std::string& scratch_dir) {
  static int counter = 0;
  const std::string err_path =
      scratch_dir + "/stderr-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>" + shell_quote(err_path)).c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, got);
  int rc = ::pclose(p);
  r.status = (rc != -1 && WIFEXITED(rc)) ? WEXITSTATUS(rc) : -1;
  r.err = read_file(err_path);
  std::remove(err_path.c_str());
  return r;
}

// ffmpeg conversion of `in` to `out` (codec chosen by the extension unless args say otherwise).
inline bool ffmpeg_convert(const std::string& in, const std::string& out,
                           const std::string& args = "") {
  return run_status("ffmpeg -nostdin -hide_banner -loglevel error -y -i " + shell_quote(in) + " " +
                    args + " " + shell_quote(out)) == 0;
}

}  // namespace testutil
}  // namespace earmark
