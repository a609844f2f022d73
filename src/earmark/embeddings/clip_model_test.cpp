#include "earmark/embeddings/clip_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/fixtures_test_util.h"
#include "earmark/common/safetensors.h"
#include "earmark/embeddings/ast_model.h"
#include "earmark/features/kaldi_fbank.h"

namespace earmark {
namespace {

using testutil::absolute_error;
using testutil::kFixtures;
using testutil::read_f32_file;

const std::string kModels = kFixtures + "/models/";

std::vector<float> unit(std::vector<float> v) {
  double norm = 0;
  for (float x : v) norm += double(x) * x;
  for (float& x : v) x = float(x / std::sqrt(norm));
  return v;
}

// The windows over a recording, fed in small blocks as a decoder does: 4 s every 2 s at 32 kHz.
TEST(ClipStream, CoversTheRecordingWithWholeWindows) {
  EARMARK_REQUIRE_FIXTURE(kModels + "panns_cnn14_r16.weights.safetensors");
  auto panns = ClipModel::load("panns", kModels + "panns_cnn14_r16.weights.safetensors", 2);
  const std::vector<float> noise = read_f32_file(kFixtures + "/inputs/noise_32k.f32");  // 10 s
  auto spans = [&](size_t total) {
    ClipStream stream(*panns, {4.0, 2.0});
    for (size_t at = 0; at < total; at += 1000)
      stream.consume(noise.data() + at % 300000, std::min<size_t>(1000, total - at));
    return stream.finish().spans;
  };
  // 10 s: 0, 2, 4, 6 s, all of it covered.
  auto s = spans(320000);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[3].start, 192000u);
  EXPECT_EQ(s[3].length, 128000u);
  // 11 s: the grid stops at 6-10 s; one more whole window ends at the end.
  s = spans(352000);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[4].start, 224000u);
  EXPECT_EQ(s[4].length, 128000u);
  // Shorter than a window: one clip of all of it.
  s = spans(96000);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].length, 96000u);
  EXPECT_TRUE(spans(0).empty());
}

// Through the clip interface, a clip is embedded as the original takes it: CLAP repeat-pads the
// 5.8 s speech to 10 s, CNN14 takes the 1.9 s chord as is; both give the original's vector.
TEST(ClipModel, EmbedsClipsAsTheOriginalsDo) {
  EARMARK_REQUIRE_FIXTURE(kModels + "ast_r64.weights.safetensors");
  auto clap = ClipModel::load("clap", kModels + "laion_clap_htsat_r16.weights.safetensors", 2);
  EXPECT_EQ(clap->sample_rate(), 48000);
  EXPECT_EQ(clap->dim(), 512);
  const std::vector<float> speech = read_f32_file(kFixtures + "/inputs/speech_48k.f32");
  std::vector<float> v(512);
  clap->embed(speech.data(), 1, speech.size(), v.data());
  SafetensorsFile clap_ref(kModels + "laion_clap_htsat_r16.activations.safetensors");
  EXPECT_LE(absolute_error(v, clap_ref.read_f32("speech.clap_embedding")), 1e-5);

  auto panns = ClipModel::load("panns", kModels + "panns_cnn14_r16.weights.safetensors");
  EXPECT_EQ(panns->sample_rate(), 32000);
  const std::vector<float> chord = read_f32_file(kFixtures + "/inputs/chord_chirp_32k.f32");
  std::vector<float> p(size_t(panns->dim()));
  panns->embed(chord.data(), 1, chord.size(), p.data());
  SafetensorsFile panns_ref(kModels + "panns_cnn14_r16.activations.safetensors");
  EXPECT_LE(absolute_error(p, unit(panns_ref.read_f32("chord_chirp.embedding"))), 1e-4);

  // AST: the clip's fbank zero-padded to 1024 frames, then the port (one head per 64 dimensions,
  // as the published models have).
  auto ast = ClipModel::load("ast", kModels + "ast_r64.weights.safetensors");
  const std::vector<float> speech16 = read_f32_file(kFixtures + "/inputs/speech_16k.f32");
  std::vector<float> a(64);
  ast->embed(speech16.data(), 1, 64000, a.data());  // its first 4 s
  KaldiFbank fbank;
  const std::vector<float> input = ast_input_1024(fbank.compute(speech16.data(), 64000));
  auto port = AstModel::load(kModels + "ast_r64.weights.safetensors");
  EXPECT_LE(absolute_error(a, unit(port->forward(input.data()).pooled)), 1e-6);
}

// A recording's windows, batched by length, give what each window gives alone.
TEST(ClipModel, EmbedsARecordingInBatches) {
  EARMARK_REQUIRE_FIXTURE(kModels + "ast_r64.weights.safetensors");
  auto panns = ClipModel::load("panns", kModels + "panns_cnn14_r16.weights.safetensors", 2);
  const std::vector<float> noise = read_f32_file(kFixtures + "/inputs/noise_32k.f32");  // 10 s
  std::vector<float> recording(noise.begin(), noise.begin() + 32000 * 9);
  const ClipEmbedding e = embed_recording(*panns, recording, {4.0, 2.0}, 2);
  ASSERT_EQ(e.spans.size(), 4u);  // 0, 2, 4 s, then 5-9 s
  EXPECT_EQ(e.spans[3].start, size_t(32000 * 5));
  const size_t dim = size_t(panns->dim());
  for (size_t i = 0; i < e.spans.size(); ++i) {
    std::vector<float> alone(dim);
    panns->embed(recording.data() + e.spans[i].start, 1, e.spans[i].length, alone.data());
    const std::vector<float> batched(e.vectors.begin() + i * dim,
                                     e.vectors.begin() + (i + 1) * dim);
    EXPECT_LE(absolute_error(batched, alone), 1e-5) << i;
  }
  // Too short for CNN14's poolings: no window.
  std::vector<float> blip(3000, 0.1f);
  EXPECT_TRUE(embed_recording(*panns, blip, {4.0, 2.0}).spans.empty());
}

TEST(ClipModel, SaysHowToGetMissingWeights) {
  try {
    ClipModel::load("clap", "/nonexistent/clap.safetensors");
    FAIL() << "loaded a missing file";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("630k-audioset-best.pt"), std::string::npos) << what;
    EXPECT_NE(what.find("tools/convert_checkpoint.py"), std::string::npos) << what;
  }
  EXPECT_THROW(ClipModel::load("vggish", "x"), Error);
  EXPECT_THROW((ClipWindows{0.1, 0.05}.validate(10)), Error);
  EXPECT_THROW((ClipWindows{4, 5}.validate(10)), Error);
  EXPECT_THROW((ClipWindows{12, 2}.validate(10)), Error);
  EXPECT_NO_THROW((ClipWindows{4, 2}.validate(10)));
}

}  // namespace
}  // namespace earmark
