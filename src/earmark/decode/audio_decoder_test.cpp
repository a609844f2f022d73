#include "earmark/decode/audio_decoder.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "earmark/common/error.h"

namespace earmark {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kSourceRate = 48000;
constexpr int kOutRate = 16000;
constexpr double kSeconds = 2.0;
// The test signal: 440 Hz at 0.45 in both channels, 2500 Hz at 0.3 in the right channel only.
// Mono average = 0.45 * sin(440) + 0.15 * sin(2500).
constexpr double kMainFreq = 440.0, kMainAmp = 0.45;
constexpr double kSideFreq = 2500.0, kSideAmp = 0.3;

// ---------------------------------------------------------------------------------------------
// Helpers.

void put_le(std::string& s, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_be16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v >> 8));
  s.push_back(static_cast<char>(v & 0xFF));
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// 16-bit PCM WAV from interleaved float samples.
void write_wav(const std::string& path, int rate, int channels, const std::vector<float>& x) {
  std::string s = "RIFF";
  const uint32_t data_bytes = static_cast<uint32_t>(x.size() * 2);
  put_le(s, 36 + data_bytes, 4);
  s += "WAVEfmt ";
  put_le(s, 16, 4);
  put_le(s, 1, 2);  // PCM
  put_le(s, static_cast<uint32_t>(channels), 2);
  put_le(s, static_cast<uint32_t>(rate), 4);
  put_le(s, static_cast<uint32_t>(rate * channels * 2), 4);
  put_le(s, static_cast<uint32_t>(channels * 2), 2);
  put_le(s, 16, 2);
  s += "data";
  put_le(s, data_bytes, 4);
  for (float v : x) {
    const long q = std::lround(std::clamp(v, -1.0f, 1.0f) * 32767.0f);
    put_le(s, static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(q))), 2);
  }
  write_file(path, s);
}

std::vector<float> test_signal(double seconds) {
  const size_t n = static_cast<size_t>(seconds * kSourceRate);
  std::vector<float> x(2 * n);
  for (size_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) / kSourceRate;
    const double main = kMainAmp * std::sin(2 * kPi * kMainFreq * t);
    x[2 * i] = static_cast<float>(main);
    x[2 * i + 1] = static_cast<float>(main + kSideAmp * std::sin(2 * kPi * kSideFreq * t));
  }
  return x;
}

// Amplitude of the component at `freq` (Goertzel over a Hann window, central part of x).
double tone_amplitude(const std::vector<float>& x, double freq, int rate) {
  const size_t skip = x.size() / 10;
  if (x.size() < 3 * skip + 16) return 0.0;
  const size_t n = x.size() - 2 * skip;
  const double w = 2 * kPi * freq / rate;
  const double coeff = 2 * std::cos(w);
  double s1 = 0, s2 = 0, wsum = 0;
  for (size_t i = 0; i < n; ++i) {
    const double hann = 0.5 - 0.5 * std::cos(2 * kPi * static_cast<double>(i) / (n - 1));
    wsum += hann;
    const double s0 = x[skip + i] * hann + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const double power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return 2.0 * std::sqrt(std::max(power, 0.0)) / wsum;
}

// Frequency (on a 10 Hz grid, 50..7000 Hz) with the largest amplitude.
double dominant_frequency(const std::vector<float>& x, int rate) {
  double best_f = 0, best_a = -1;
  for (double f = 50; f <= 7000; f += 10) {
    const double a = tone_amplitude(x, f, rate);
    if (a > best_a) best_a = a, best_f = f;
  }
  return best_f;
}

float peak(const std::vector<float>& x) {
  float m = 0;
  for (float v : x) m = std::max(m, std::fabs(v));
  return m;
}

bool run_command(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return rc == 0;
}

bool have_encoder(const std::string& name) {
  return run_command("ffmpeg -hide_banner -loglevel error -h encoder=" + name +
                     " 2>/dev/null | grep -q 'Encoder " + name + "'");
}

DecodeOptions raw_options() {
  DecodeOptions o;
  o.normalise = false;
  return o;
}

// Replaces fd 0 with `fd` for the scope; always restores the original stdin.
class StdinRedirect {
 public:
  explicit StdinRedirect(int fd) : saved_(::dup(STDIN_FILENO)) {
    if (fd >= 0) {
      ::dup2(fd, STDIN_FILENO);
    } else {
      ::close(STDIN_FILENO);
    }
  }
  ~StdinRedirect() {
    if (saved_ >= 0) {
      ::dup2(saved_, STDIN_FILENO);
      ::close(saved_);
    }
  }

 private:
  int saved_;
};

// A minimal 4-channel ProTracker module: one looping 32-sample sine, a note on channel 0 in
// row 0, speed 3. Playback rate of the sample at period 428 is 7093789.2 / (2 * 428) = 8287 Hz,
// so the tone is 8287 / 32 = 259 Hz.
std::string protracker_module() {
  std::string s(20, '\0');
  s.replace(0, 8, "earmark!");
  const int sample_words = 32;  // 64 bytes = two cycles of 32
  for (int i = 0; i < 31; ++i) {
    std::string name(22, '\0');
    s += name;
    if (i == 0) {
      put_be16(s, sample_words);  // length in words
      s.push_back(0);             // finetune
      s.push_back(64);            // volume
      put_be16(s, 0);             // loop start
      put_be16(s, sample_words);  // loop length
    } else {
      put_be16(s, 0);
      s.push_back(0);
      s.push_back(0);
      put_be16(s, 0);
      put_be16(s, 1);
    }
  }
  s.push_back(1);    // song length: one order
  s.push_back(127);  // restart byte
  s += std::string(128, '\0');
  s += "M.K.";
  for (int row = 0; row < 64; ++row) {
    for (int ch = 0; ch < 4; ++ch) {
      uint8_t cell[4] = {0, 0, 0, 0};
      if (row == 0 && ch == 0) {
        const int period = 428, sample = 1;
        cell[0] = static_cast<uint8_t>((sample & 0xF0) | ((period >> 8) & 0x0F));
        cell[1] = static_cast<uint8_t>(period & 0xFF);
        cell[2] = static_cast<uint8_t>((sample & 0x0F) << 4);
      }
      if (row == 0 && ch == 1) {
        cell[2] = 0x0F;  // effect F: set speed
        cell[3] = 3;
      }
      s.append(reinterpret_cast<const char*>(cell), 4);
    }
  }
  for (int i = 0; i < 2 * sample_words; ++i) {
    s.push_back(
        static_cast<char>(static_cast<int8_t>(std::lround(100 * std::sin(2 * kPi * i / 32)))));
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Fixture: all media files are generated once per test suite in a fresh temp directory.

class AudioDecodeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = ::testing::TempDir() + "earmark_decode_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    ASSERT_NE(::mkdtemp(buf.data()), nullptr);
    dir_ = buf.data();

    write_wav(path("signal.wav"), kSourceRate, 2, test_signal(kSeconds));
    const std::string ff = "ffmpeg -nostdin -hide_banner -loglevel error -y ";
    const std::string in = " -i " + path("signal.wav");
    const std::string video_codec = have_encoder("libx264") ? "libx264 -preset ultrafast" : "mpeg4";
    const std::string black = " -f lavfi -i color=black:s=64x64:r=10:d=" + std::to_string(kSeconds);
    struct Job {
      std::string name, args;
    };
    const std::vector<Job> jobs = {
        {"flac", in + " -c:a flac " + path("signal.flac")},
        {"mp3", in + " -c:a libmp3lame -b:a 192k " + path("signal.mp3")},
        {"m4a", in + " -c:a aac -b:a 192k " + path("signal.m4a")},
        {"ogg", in + " -c:a libvorbis -q:a 6 " + path("signal.ogg")},
        {"opus", in + " -c:a libopus -b:a 128k " + path("signal.opus")},
        {"mp4", black + in + " -map 0:v -map 1:a -c:v " + video_codec +
                    " -pix_fmt yuv420p -c:a aac -b:a 192k -shortest " + path("signal.mp4")},
        {"mkv",
         black + in + " -map 0:v -map 1:a -c:v mpeg4 -c:a ac3 -b:a 256k " + path("signal.mkv")},
        {"webm", black + in + " -map 0:v -map 1:a -c:v libvpx -deadline realtime -c:a libopus " +
                     "-b:a 128k " + path("signal.webm")},
        {"video_only", black + " -c:v mpeg4 " + path("video_only.mp4")},
        {"two_streams",
         " -f lavfi -i sine=frequency=440:duration=1:sample_rate=44100"
         " -f lavfi -i sine=frequency=1500:duration=1:sample_rate=44100"
         " -map 0:a -map 1:a -c:a flac " +
             path("two_streams.mka")},
        {"long", " -f lavfi -i sine=frequency=1000:duration=30:sample_rate=22050 -c:a flac " +
                     path("long.flac")},
    };
    for (const auto& job : jobs) {
      ASSERT_TRUE(run_command(ff + job.args)) << "ffmpeg failed for " << job.name;
    }
    write_file(path("tracker.mod"), protracker_module());
  }

  static void TearDownTestSuite() {
    if (!dir_.empty()) run_command("rm -rf '" + dir_ + "'");
  }

  static std::string path(const std::string& name) { return dir_ + "/" + name; }

  // Decodes `name` and checks length, tones and level against the known test signal.
  static void check_test_signal(const std::string& name, const std::string& codec) {
    SCOPED_TRACE(name);
    AudioInfo info;
    const auto x = decode_to_vector(path(name), raw_options(), &info);
    EXPECT_EQ(info.path, path(name));
    EXPECT_EQ(info.codec, codec);
    EXPECT_EQ(info.source_channels, 2);
    EXPECT_GT(info.source_sample_rate, 0);
    EXPECT_NEAR(info.duration_s, kSeconds, 0.15);
    EXPECT_FALSE(info.container.empty());
    // Length: 2 s at 16 kHz, within codec priming/padding tolerance (~60 ms).
    EXPECT_NEAR(static_cast<double>(x.size()), kSeconds * kOutRate, 0.06 * kOutRate);
    EXPECT_NEAR(dominant_frequency(x, kOutRate), kMainFreq, 10.0);
    // Equal-weight downmix: 0.45 stays 0.45 (a sum would give 0.9, a -3 dB pan law 0.32) and
    // the one-sided 2500 Hz tone comes out at half its amplitude.
    EXPECT_NEAR(tone_amplitude(x, kMainFreq, kOutRate), kMainAmp, 0.05);
    EXPECT_NEAR(tone_amplitude(x, kSideFreq, kOutRate), kSideAmp / 2, 0.03);
    EXPECT_LT(tone_amplitude(x, 1234.0, kOutRate), 0.01);
    EXPECT_LE(peak(x), 1.0f);
    EXPECT_GT(peak(x), 0.5f);
  }

  static std::string dir_;
};

std::string AudioDecodeTest::dir_;

// Expects an earmark::Error whose message names the file; returns the message.
template <typename F>
std::string expect_error(F&& f, const std::string& file) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no exception for " << file;
  return {};
}

// ---------------------------------------------------------------------------------------------
// Formats and codecs.

TEST_F(AudioDecodeTest, Wav) {
  check_test_signal("signal.wav", "pcm_s16le");
  AudioInfo info;
  const auto x = decode_to_vector(path("signal.wav"), raw_options(), &info);
  EXPECT_EQ(info.container, "wav");
  EXPECT_EQ(info.stream_index, 0);
  EXPECT_EQ(info.source_sample_rate, kSourceRate);
  // Lossless input: resampler output length is exact to a sample or two, including the tail.
  EXPECT_NEAR(static_cast<double>(x.size()), kSeconds * kOutRate, 2.0);
}

TEST_F(AudioDecodeTest, Flac) { check_test_signal("signal.flac", "flac"); }
TEST_F(AudioDecodeTest, Mp3) { check_test_signal("signal.mp3", "mp3"); }
TEST_F(AudioDecodeTest, AacInM4a) { check_test_signal("signal.m4a", "aac"); }
TEST_F(AudioDecodeTest, OggVorbis) { check_test_signal("signal.ogg", "vorbis"); }
TEST_F(AudioDecodeTest, Opus) { check_test_signal("signal.opus", "opus"); }
TEST_F(AudioDecodeTest, Ac3InMkvWithVideo) { check_test_signal("signal.mkv", "ac3"); }
TEST_F(AudioDecodeTest, OpusInWebmWithVideo) { check_test_signal("signal.webm", "opus"); }

TEST_F(AudioDecodeTest, AacInMp4WithVideo) {
  check_test_signal("signal.mp4", "aac");
  AudioInfo info;
  decode_to_vector(path("signal.mp4"), raw_options(), &info);
  EXPECT_EQ(info.stream_index, 1);  // stream 0 is the video
  EXPECT_NE(info.container.find("mp4"), std::string::npos);
}

TEST_F(AudioDecodeTest, OtherOutputRate) {
  DecodeOptions o = raw_options();
  o.sample_rate = 8000;
  const auto x = decode_to_vector(path("signal.flac"), o);
  EXPECT_NEAR(static_cast<double>(x.size()), kSeconds * 8000, 2.0);
  EXPECT_NEAR(dominant_frequency(x, 8000), kMainFreq, 10.0);
}

TEST_F(AudioDecodeTest, TrackerModule) {
  AudioInfo info;
  const auto x = decode_to_vector(path("tracker.mod"), raw_options(), &info);
  EXPECT_EQ(info.container, "libopenmpt");
  // 64 rows at speed 3, 125 BPM: 64 * 3 * 0.02 s = 3.84 s.
  EXPECT_NEAR(static_cast<double>(x.size()) / kOutRate, 3.84, 0.3);
  EXPECT_GT(peak(x), 0.05f);
  EXPECT_NEAR(dominant_frequency(x, kOutRate), 259.0, 10.0);
}

TEST_F(AudioDecodeTest, DownmixOfFullScaleStereoDoesNotClip) {
  // Both channels at 0.99 in phase: the average is 0.99, a sum would clip at 1.98.
  std::vector<float> x(2 * kSourceRate / 2);
  for (size_t i = 0; i < x.size() / 2; ++i) {
    x[2 * i] = x[2 * i + 1] =
        static_cast<float>(0.99 * std::sin(2 * kPi * 1000.0 * i / kSourceRate));
  }
  write_wav(path("full_scale.wav"), kSourceRate, 2, x);
  const auto y = decode_to_vector(path("full_scale.wav"), raw_options());
  EXPECT_LE(peak(y), 1.0f);
  EXPECT_GT(peak(y), 0.95f);
  // With normalisation on, the level comes down to ~-20 dBFS RMS and stays in range.
  const auto z = decode_to_vector(path("full_scale.wav"));
  EXPECT_EQ(z.size(), y.size());
  EXPECT_LE(peak(z), 1.0f);
  EXPECT_NEAR(tone_amplitude(z, 1000.0, kOutRate), 0.1 * std::sqrt(2.0), 0.03);
}

TEST_F(AudioDecodeTest, NormalisationKeepsLength) {
  DecodeOptions o;  // normalise = true
  const auto a = decode_to_vector(path("signal.flac"), o);
  const auto b = decode_to_vector(path("signal.flac"), raw_options());
  EXPECT_EQ(a.size(), b.size());
  EXPECT_NEAR(dominant_frequency(a, kOutRate), kMainFreq, 10.0);
}

// ---------------------------------------------------------------------------------------------
// Stream selection.

TEST_F(AudioDecodeTest, ChosenStreamIndex) {
  const std::string file = path("two_streams.mka");
  AudioInfo info;
  auto x = decode_to_vector(file, raw_options(), &info);
  EXPECT_EQ(info.stream_index, 0);
  EXPECT_EQ(info.source_channels, 1);
  EXPECT_NEAR(dominant_frequency(x, kOutRate), 440.0, 10.0);

  DecodeOptions o = raw_options();
  o.stream_index = 1;
  x = decode_to_vector(file, o, &info);
  EXPECT_EQ(info.stream_index, 1);
  EXPECT_NEAR(dominant_frequency(x, kOutRate), 1500.0, 10.0);
  EXPECT_NEAR(static_cast<double>(x.size()), kOutRate, 0.02 * kOutRate);

  o.stream_index = 2;
  const auto msg = expect_error([&] { AudioDecoder d(file, o); }, file);
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
}

TEST_F(AudioDecodeTest, ChosenStreamMustBeAudio) {
  const std::string file = path("signal.mp4");
  DecodeOptions o = raw_options();
  o.stream_index = 0;  // the video stream
  const auto msg = expect_error([&] { AudioDecoder d(file, o); }, file);
  EXPECT_NE(msg.find("not an audio stream"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------
// Standard input.

TEST_F(AudioDecodeTest, StdinFlac) {
  const int fd = ::open(path("signal.flac").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<float> x;
  AudioInfo info;
  {
    StdinRedirect redirect(fd);
    x = decode_to_vector("-", raw_options(), &info);
  }
  ::close(fd);
  EXPECT_EQ(info.path, "-");
  EXPECT_EQ(info.codec, "flac");
  EXPECT_NEAR(static_cast<double>(x.size()), kSeconds * kOutRate, 2.0);
  EXPECT_NEAR(dominant_frequency(x, kOutRate), kMainFreq, 10.0);
}

TEST_F(AudioDecodeTest, StdinMp3) {
  const int fd = ::open(path("signal.mp3").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<float> x;
  {
    StdinRedirect redirect(fd);
    x = decode_to_vector("-", raw_options());
  }
  ::close(fd);
  EXPECT_NEAR(static_cast<double>(x.size()), kSeconds * kOutRate, 0.06 * kOutRate);
  EXPECT_NEAR(dominant_frequency(x, kOutRate), kMainFreq, 10.0);
}

TEST_F(AudioDecodeTest, StdinEmptyOrClosed) {
  {
    const int fd = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(fd, 0);
    StdinRedirect redirect(fd);
    const auto msg = expect_error([] { decode_to_vector("-"); }, "standard input");
    EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
    ::close(fd);
  }
  {
    StdinRedirect redirect(-1);  // fd 0 closed
    expect_error([] { decode_to_vector("-"); }, "standard input");
  }
  {
    const std::string text_file = path("stdin.txt");
    write_file(text_file, "not audio at all\n");
    const int fd = ::open(text_file.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    StdinRedirect redirect(fd);
    expect_error([] { decode_to_vector("-"); }, "standard input");
    ::close(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Streaming.

class BlockRecorder : public AudioConsumer {
 public:
  void consume(const float* samples, size_t count) override {
    ++blocks;
    total += count;
    max_block = std::max(max_block, count);
    min_block = std::min(min_block, count);
    for (size_t i = 0; i < count; ++i) peak = std::max(peak, std::fabs(samples[i]));
  }
  size_t blocks = 0, total = 0, max_block = 0, min_block = SIZE_MAX;
  float peak = 0;
};

TEST_F(AudioDecodeTest, StreamsInBlocks) {
  DecodeOptions o;
  o.block_samples = 4096;
  AudioDecoder decoder(path("long.flac"), o);
  EXPECT_EQ(decoder.info().source_sample_rate, 22050);
  EXPECT_NEAR(decoder.info().duration_s, 30.0, 0.1);
  BlockRecorder rec;
  const size_t n = decoder.run(rec);
  EXPECT_EQ(n, rec.total);
  EXPECT_NEAR(static_cast<double>(n), 30.0 * kOutRate, 2.0);
  EXPECT_LE(rec.max_block, 2 * o.block_samples);
  EXPECT_GE(rec.blocks, n / (2 * o.block_samples));
  EXPECT_GT(rec.blocks, 100u);
  EXPECT_GT(rec.min_block, 0u);
  EXPECT_LE(rec.peak, 1.0f);
  // A decoder runs once.
  EXPECT_THROW(decoder.run(rec), Error);
}

// ---------------------------------------------------------------------------------------------
// Bad input.

TEST_F(AudioDecodeTest, MissingFile) {
  const std::string file = path("does_not_exist.wav");
  const auto msg = expect_error([&] { decode_to_vector(file); }, file);
  EXPECT_NE(msg.find("no such file"), std::string::npos) << msg;
}

TEST_F(AudioDecodeTest, EmptyFile) {
  const std::string file = path("empty.mp3");
  write_file(file, "");
  const auto msg = expect_error([&] { decode_to_vector(file); }, file);
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
}

TEST_F(AudioDecodeTest, Directory) {
  const std::string file = path("a_directory.wav");
  ASSERT_EQ(::mkdir(file.c_str(), 0755), 0);
  const auto msg = expect_error([&] { decode_to_vector(file); }, file);
  EXPECT_NE(msg.find("directory"), std::string::npos) << msg;
}

TEST_F(AudioDecodeTest, TextFile) {
  for (const char* name : {"notes.txt", "notes.wav", "notes.mp3"}) {
    const std::string file = path(name);
    write_file(file, "This is a plain text file.\nIt has no audio in it whatsoever.\n");
    expect_error([&] { decode_to_vector(file); }, file);
  }
}

TEST_F(AudioDecodeTest, RandomBytes) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 4; ++trial) {
    std::string bytes(20000 + 10000 * trial, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    const std::string file = path("random" + std::to_string(trial) + ".mp3");
    write_file(file, bytes);
    expect_error([&] { decode_to_vector(file); }, file);
  }
}

TEST_F(AudioDecodeTest, VideoWithoutAudio) {
  const std::string file = path("video_only.mp4");
  const auto msg = expect_error([&] { decode_to_vector(file); }, file);
  EXPECT_NE(msg.find("no audio"), std::string::npos) << msg;
}

TEST_F(AudioDecodeTest, TruncatedFiles) {
  for (const char* name : {"signal.mp3", "signal.flac", "signal.m4a", "signal.ogg"}) {
    const std::string full = read_file(path(name));
    ASSERT_GT(full.size(), 1000u);
    for (size_t cut : {size_t{200}, full.size() * 3 / 10}) {
      SCOPED_TRACE(std::string(name) + " cut at " + std::to_string(cut));
      const std::string file = path(std::to_string(cut) + "_" + name);
      write_file(file, full.substr(0, cut));
      try {
        const auto x = decode_to_vector(file, raw_options());
        // Partially decodable: what came out is real audio, and shorter than the whole.
        EXPECT_GT(x.size(), 0u);
        EXPECT_LT(x.size(), static_cast<size_t>(kSeconds * kOutRate * 0.6));
        EXPECT_LE(peak(x), 1.0f);
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
      }
    }
  }
}

TEST_F(AudioDecodeTest, TruncatedWavKeepsWhatIsThere) {
  const std::string full = read_file(path("signal.wav"));
  const std::string file = path("truncated.wav");
  write_file(file, full.substr(0, full.size() / 2));
  const auto x = decode_to_vector(file, raw_options());
  EXPECT_NEAR(static_cast<double>(x.size()), kSeconds / 2 * kOutRate, 0.01 * kOutRate);
  EXPECT_NEAR(dominant_frequency(x, kOutRate), kMainFreq, 10.0);
}

TEST_F(AudioDecodeTest, CorruptMiddleOfMp3) {
  // Overwrite 2 kB in the middle with garbage: decoding must keep (most of) the audio.
  std::string bytes = read_file(path("signal.mp3"));
  std::mt19937 rng(3);
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 2048; ++i)
    bytes[i] = static_cast<char>(rng());
  const std::string file = path("corrupt_middle.mp3");
  write_file(file, bytes);
  const auto x = decode_to_vector(file, raw_options());
  EXPECT_GT(x.size(), static_cast<size_t>(0.7 * kSeconds * kOutRate));
  EXPECT_LE(x.size(), static_cast<size_t>(1.05 * kSeconds * kOutRate));
  EXPECT_NEAR(dominant_frequency(x, kOutRate), kMainFreq, 10.0);
}

TEST_F(AudioDecodeTest, InvalidOptions) {
  DecodeOptions o;
  o.sample_rate = 0;
  EXPECT_THROW(AudioDecoder(path("signal.wav"), o), Error);
  o = DecodeOptions();
  o.block_samples = 0;
  EXPECT_THROW(AudioDecoder(path("signal.wav"), o), Error);
}

}  // namespace
}  // namespace earmark
