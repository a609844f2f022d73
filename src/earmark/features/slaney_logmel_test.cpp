#include "earmark/features/slaney_logmel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
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
const char* const kSignals[] = {"chord_chirp", "noise", "silence", "clipped", "speech"};

struct Config {
  const char* file;
  const char* rate;  // input file suffix
  SlaneyLogMelOptions options;
};

const Config kConfigs[] = {
    {"panns_cnn14_32k_logmel", "32k", SlaneyLogMelOptions::panns_cnn14_32k()},
    {"panns_cnn14_16k_logmel", "16k", SlaneyLogMelOptions::panns_cnn14_16k()},
    {"clap_htsat_48k_logmel", "48k", SlaneyLogMelOptions::clap_htsat_48k()},
};

std::string fixture(const Config& c) { return kFixtures + "/frontend/" + c.file + ".safetensors"; }

#define REQUIRE_FIXTURE(c)                                                               \
  do {                                                                                   \
    if (!std::ifstream(fixture(c)).good()) GTEST_SKIP() << "no fixture: " << fixture(c); \
  } while (0)

// Distance in float32 units in the last place (same sign assumed; both are >= 0 here).
int64_t ulps(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::abs(int64_t(ia) - int64_t(ib));
}

// The Slaney filters are computed in double and rounded to float twice, as librosa does; the
// checkpoints' melW must come out to the last bit (a float ulp where exp/log differ).
TEST(SlaneyLogMel, MelFiltersMatchLibrosa) {
  for (const Config& c : kConfigs) {
    SCOPED_TRACE(c.file);
    REQUIRE_FIXTURE(c);
    SafetensorsFile st(fixture(c));
    const std::vector<float> ref = st.read_f32("melW");
    const std::vector<float> ours = slaney_mel_filters(c.options);
    ASSERT_EQ(st.info("melW").shape, (std::vector<int64_t>{c.options.fft_size / 2 + 1, 64}));
    ASSERT_EQ(ours.size(), ref.size());
    size_t exact = 0;
    int64_t worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      exact += ours[i] == ref[i];
      worst = std::max(worst, ulps(ours[i], ref[i]));
    }
    std::printf("[ %-22s ] melW: %zu of %zu bit-exact, worst %lld ulp\n", c.file, exact, ref.size(),
                static_cast<long long>(worst));
    EXPECT_LE(worst, 1);
  }
}

TEST(SlaneyLogMel, MatchesTorchlibrosaOnFixtures) {
  for (const Config& c : kConfigs) {
    SCOPED_TRACE(c.file);
    REQUIRE_FIXTURE(c);
    SafetensorsFile st(fixture(c));
    SlaneyLogMel logmel(c.options);
    for (const char* sig : kSignals) {
      SCOPED_TRACE(sig);
      const std::vector<float> wav =
          read_f32_file(kFixtures + "/inputs/" + sig + "_" + c.rate + ".f32");
      const std::string key = std::string(sig) + ".logmel";
      const auto& info = st.info(key);
      ASSERT_EQ(info.shape.size(), 2u);
      ASSERT_EQ(size_t(info.shape[0]), logmel.num_frames(wav.size()));
      const std::vector<float> ref = st.read_f32(key);
      const std::vector<float> ours = logmel.compute(wav.data(), wav.size());
      ASSERT_EQ(ours.size(), ref.size());
      const testutil::SplitError e = testutil::split_error(ours, ref, -60.0f, 0.01, 0.2);
      std::printf("[ %-22s ] %-11s %4zu frames: max abs error %.3g dB (ref > -60), %.3g dB\n",
                  c.file, sig, ours.size() / 64, e.above, e.below);
      EXPECT_EQ(e.outside, 0u) << "max error " << e.above << " dB (ref > -60), " << e.below;
      if (std::string(sig) == "silence") {
        for (size_t i = 0; i < ours.size(); ++i) ASSERT_EQ(ours[i], kSlaneyLogMelFloor);
      }
    }
    // The power spectrogram before the filters, relative to its peak.
    const std::vector<float> wav =
        read_f32_file(kFixtures + "/inputs/chord_chirp_" + c.rate + ".f32");
    const std::vector<float> ref = st.read_f32("chord_chirp.power");
    const std::vector<float> ours = logmel.power(wav.data(), wav.size());
    ASSERT_EQ(ours.size(), ref.size());
    const double peak = *std::max_element(ref.begin(), ref.end());
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i)
      worst = std::max(worst, std::fabs(double(ours[i]) - double(ref[i])) / peak);
    EXPECT_LE(worst, 1e-5);
  }
}

TEST(SlaneyLogMel, CheckpointFiltersReplaceTheComputedOnes) {
  SlaneyLogMel logmel(SlaneyLogMelOptions::panns_cnn14_16k());
  std::vector<float> filters(257 * 64, 0.0f);
  for (size_t k = 0; k < 257; ++k) filters[k * 64 + k % 64] = 1.0f;  // each bin to one band
  logmel.set_mel_filters(filters);
  std::vector<float> tone(16000);
  for (size_t i = 0; i < tone.size(); ++i) tone[i] = float(std::sin(2 * M_PI * 1000.0 * i / 16000));
  const std::vector<float> out = logmel.compute(tone.data(), tone.size());
  // 1 kHz is bin 32 of 512 at 16 kHz: band 32 carries it, a band with no bin near it does not.
  const size_t t = out.size() / 64 / 2;
  EXPECT_GT(out[t * 64 + 32], out[t * 64 + 40] + 60.0f);
  EXPECT_THROW(logmel.set_mel_filters(std::vector<float>(10)), Error);
}

TEST(SlaneyLogMel, BadInputIsAnError) {
  SlaneyLogMelOptions o;
  o.fmax = 20000;  // above 16 kHz Nyquist
  EXPECT_THROW(SlaneyLogMel{o}, Error);
  o = {};
  o.hop = 0;
  EXPECT_THROW(SlaneyLogMel{o}, Error);
  o = {};
  o.fmin = o.fmax;
  EXPECT_THROW(slaney_mel_filters(o), Error);
  SlaneyLogMel logmel;
  std::vector<float> few(512, 0.1f);  // reflect padding by 512 needs more than 512 samples
  EXPECT_THROW(logmel.compute(few.data(), few.size()), Error);
  few.push_back(0.1f);
  EXPECT_EQ(logmel.compute(few.data(), few.size()).size(), logmel.num_frames(513) * 64);
}

}  // namespace
}  // namespace earmark
