#include "earmark/features/kaldi_fbank.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/fixtures_test_util.h"
#include "earmark/common/safetensors.h"

namespace earmark {
namespace {

using testutil::kFixtures;
using testutil::read_f32_file;
const std::string kFbankFile = kFixtures + "/frontend/ast_kaldi_fbank_16k.safetensors";
const char* const kSignals[] = {"chord_chirp", "noise", "silence", "clipped", "speech"};

bool have_fixtures() {
  std::ifstream f(kFbankFile, std::ios::binary);
  return f.good();
}

#define REQUIRE_FIXTURES()                                                      \
  do {                                                                          \
    if (!have_fixtures()) GTEST_SKIP() << "fixtures not found: " << kFbankFile; \
  } while (0)

TEST(KaldiFbank, MelBanksMatchTorchaudio) {
  REQUIRE_FIXTURES();
  SafetensorsFile st(kFbankFile);
  const auto& info = st.info("mel_banks");
  ASSERT_EQ(info.shape, (std::vector<int64_t>{128, 257}));
  const std::vector<float> ref = st.read_f32("mel_banks");
  const std::vector<float> ours = kaldi_mel_banks(FbankOptions{}, 512);
  ASSERT_EQ(ours.size(), ref.size());
  double max_err = 0.0;
  for (size_t i = 0; i < ref.size(); ++i)
    max_err = std::max(max_err, double(std::fabs(ours[i] - ref[i])));
  std::printf("[ mel_banks ] max abs error %.3g\n", max_err);
  EXPECT_LE(max_err, 2e-5);
  // Structure: filter 3 all zero, Nyquist column zero, no filter exceeds 1.
  for (size_t k = 0; k < 257; ++k) EXPECT_EQ(ours[3 * 257 + k], 0.0f);
  for (size_t b = 0; b < 128; ++b) EXPECT_EQ(ours[b * 257 + 256], 0.0f);
  EXPECT_LE(*std::max_element(ours.begin(), ours.end()), 1.0f);
}

TEST(KaldiFbank, Geometry) {
  KaldiFbank fbank;
  EXPECT_EQ(fbank.frame_length(), 400u);
  EXPECT_EQ(fbank.frame_shift(), 160u);
  EXPECT_EQ(fbank.fft_size(), 512u);
  EXPECT_EQ(fbank.num_bins(), 128);
  EXPECT_EQ(fbank.num_frames(0), 0u);
  EXPECT_EQ(fbank.num_frames(399), 0u);
  EXPECT_EQ(fbank.num_frames(400), 1u);
  EXPECT_EQ(fbank.num_frames(559), 1u);
  EXPECT_EQ(fbank.num_frames(560), 2u);
  EXPECT_EQ(fbank.num_frames(59200), 368u);
  EXPECT_EQ(fbank.num_frames(92579), 577u);
  EXPECT_TRUE(fbank.compute(nullptr, 0).empty());

  FbankOptions bad;
  bad.num_mel_bins = 3;
  EXPECT_THROW(KaldiFbank{bad}, Error);
  bad = FbankOptions{};
  bad.low_freq = 9000;
  EXPECT_THROW(KaldiFbank{bad}, Error);
  bad = FbankOptions{};
  bad.sample_rate = 0;
  EXPECT_THROW(KaldiFbank{bad}, Error);
  bad = FbankOptions{};
  bad.frame_shift_ms = 0;
  EXPECT_THROW(KaldiFbank{bad}, Error);
}

TEST(KaldiFbank, SilenceIsTheLogFloor) {
  KaldiFbank fbank;
  std::vector<float> zeros(4000, 0.0f);
  const auto out = fbank.compute(zeros.data(), zeros.size());
  ASSERT_EQ(out.size(), fbank.num_frames(4000) * 128);
  for (float v : out) EXPECT_EQ(v, kFbankLogFloor);
  EXPECT_FLOAT_EQ(kFbankLogFloor, std::log(1.1920928955078125e-07f));
  // A constant (DC) signal is removed entirely by the DC offset removal.
  std::vector<float> dc(400, 0.25f), frame(128);
  fbank.compute_frame(dc.data(), frame.data());
  for (float v : frame) EXPECT_EQ(v, kFbankLogFloor);
}

TEST(KaldiFbank, MatchesTorchaudioOnFixtures) {
  REQUIRE_FIXTURES();
  SafetensorsFile st(kFbankFile);
  KaldiFbank fbank;
  for (const char* sig : kSignals) {
    SCOPED_TRACE(sig);
    const std::vector<float> wav = read_f32_file(kFixtures + "/inputs/" + sig + "_16k.f32");
    const std::string key = std::string(sig) + ".fbank";
    const auto& info = st.info(key);
    ASSERT_EQ(info.shape.size(), 2u);
    ASSERT_EQ(info.shape[1], 128);
    const std::vector<float> ref = st.read_f32(key);
    const std::vector<float> ours = fbank.compute(wav.data(), wav.size());
    ASSERT_EQ(fbank.num_frames(wav.size()), size_t(info.shape[0]));
    ASSERT_EQ(ours.size(), ref.size());

    const testutil::SplitError e = testutil::split_error(ours, ref, -10.0f, 1e-3, 2e-2);
    std::printf("[ %-11s ] fbank %zu frames: max abs error %.3g (ref > -10), %.3g (elsewhere)\n",
                sig, ours.size() / 128, e.above, e.below);
    EXPECT_EQ(e.outside, 0u) << "max error " << e.above << " (ref > -10), " << e.below
                             << " elsewhere";

    if (std::string(sig) == "silence") {
      for (size_t i = 0; i < ref.size(); ++i) {
        EXPECT_NEAR(ours[i], -15.942385f, 1e-5);
        EXPECT_NEAR(ref[i], -15.942385f, 1e-5);
      }
    }

    // compute_frame on a single frame gives the same row as compute().
    if (!ours.empty()) {
      const size_t t = (ours.size() / 128) / 2;
      std::vector<float> row(128);
      fbank.compute_frame(wav.data() + t * fbank.frame_shift(), row.data());
      for (size_t b = 0; b < 128; ++b) EXPECT_EQ(row[b], ours[t * 128 + b]);
    }

    // AST model input: pad/truncate to 1024 frames and normalise.
    const std::vector<float> ref_in = st.read_f32(std::string(sig) + ".input_1024");
    const std::vector<float> in = ast_input_1024(ours);
    ASSERT_EQ(in.size(), ref_in.size());
    double max_in = 0.0;
    for (size_t i = 0; i < in.size(); ++i) {
      max_in = std::max(max_in, std::fabs(double(in[i]) - double(ref_in[i])));
    }
    std::printf("[ %-11s ] input_1024: max abs error %.3g\n", sig, max_in);
    EXPECT_LE(max_in, 2e-3);
    // Normalising the stored fbank itself is exact up to float rounding.
    const std::vector<float> from_ref = ast_input_1024(ref);
    double max_exact = 0.0;
    for (size_t i = 0; i < in.size(); ++i) {
      max_exact = std::max(max_exact, std::fabs(double(from_ref[i]) - double(ref_in[i])));
    }
    EXPECT_LE(max_exact, 1e-6);
  }
}

TEST(KaldiFbank, AstInputPaddingAndTruncation) {
  std::vector<float> fb(3 * 128, kFbankLogFloor);
  const auto in = ast_input_1024(fb);
  ASSERT_EQ(in.size(), 1024u * 128u);
  EXPECT_NEAR(in[0], -1.2775939f, 1e-6);
  EXPECT_NEAR(in[3 * 128], 0.46703237f, 1e-7);
  EXPECT_NEAR(in.back(), 0.46703237f, 1e-7);

  std::vector<float> longer(1100 * 4);
  for (size_t i = 0; i < longer.size(); ++i) longer[i] = float(i % 7);
  const auto cut = ast_input(longer.data(), 1100, 4, 1024);
  ASSERT_EQ(cut.size(), 1024u * 4u);
  EXPECT_FLOAT_EQ(cut[4 * 1023 + 3], (longer[4 * 1023 + 3] + 4.2677393f) / 9.1379948f);
  EXPECT_THROW(ast_input_1024(std::vector<float>(130)), Error);
}

TEST(KaldiFbank, Throughput) {
  // Informative only: the fbank must run far faster than real time for indexing.
  KaldiFbank fbank;
  std::vector<float> wav(16000 * 20);
  uint32_t state = 1;
  for (float& v : wav) {
    state = state * 1664525u + 1013904223u;
    v = float(int32_t(state >> 8) - (1 << 23)) / float(1 << 24);
  }
  const auto start = std::chrono::steady_clock::now();
  const auto out = fbank.compute(wav.data(), wav.size());
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ throughput ] 20 s of audio in %.2f ms = %.0fx real time\n", secs * 1e3,
              20.0 / std::max(secs, 1e-9));
  EXPECT_EQ(out.size(), fbank.num_frames(wav.size()) * 128);
}

}  // namespace
}  // namespace earmark
