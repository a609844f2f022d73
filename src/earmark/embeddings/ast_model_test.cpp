#include "earmark/embeddings/ast_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/fixtures_test_util.h"
#include "earmark/common/safetensors.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/features/kaldi_fbank.h"

namespace earmark {
namespace {

using testutil::absolute_error;
using testutil::kFixtures;
using testutil::read_f32_file;
using testutil::relative_error;

const std::string kWeights = kFixtures + "/models/ast_r64.weights.safetensors";
const std::string kActivations = kFixtures + "/models/ast_r64.activations.safetensors";
const std::string kFrontEnd = kFixtures + "/frontend/ast_kaldi_fbank_16k.safetensors";

// Fed the stored model input, every stored activation matches the original's.
TEST(AstModel, MatchesTheOriginalLayerByLayer) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  auto model = AstModel::load(kWeights, 1, 4);  // the reduced model: 64 dimensions, 4 heads
  EXPECT_EQ(model->embedding_dim(), 64);
  EXPECT_EQ(model->classes(), 527);
  SafetensorsFile act(kActivations), front(kFrontEnd);
  for (const std::string sig : {"noise", "speech", "chord_chirp"}) {
    SCOPED_TRACE(sig);
    const std::vector<float> input = front.read_f32(sig + ".input_1024");
    AstTaps taps;
    const AstOutput out = model->forward(input.data(), &taps);
    if (sig != "chord_chirp") {
      for (const char* name : {"patch_embed", "block0", "norm"}) {
        const auto& [shape, values] = taps.tensors.at(name);
        EXPECT_EQ(shape, act.info(sig + "." + name).shape) << name;
        const double e = relative_error(values, act.read_f32(sig + "." + name));
        std::printf("[ %-11s ] %-12s relative error %.3g\n", sig.c_str(), name, e);
        EXPECT_LE(e, 1e-5) << name;
      }
    }
    const double e_pool = relative_error(out.pooled, act.read_f32(sig + ".pooled"));
    const double e_logit = relative_error(out.logits, act.read_f32(sig + ".logits"));
    std::printf("[ %-11s ] pooled %.3g, logits %.3g\n", sig.c_str(), e_pool, e_logit);
    EXPECT_LE(e_pool, 1e-5);
    EXPECT_LE(e_logit, 1e-5);
  }
}

// From the 16 kHz waveform through our own fbank.
TEST(AstModel, MatchesTheOriginalFromTheWaveform) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  auto model = AstModel::load(kWeights, 1, 4);
  SafetensorsFile act(kActivations);
  KaldiFbank fbank;
  for (const std::string sig : {"noise", "speech", "chord_chirp"}) {
    SCOPED_TRACE(sig);
    const std::vector<float> wav = read_f32_file(kFixtures + "/inputs/" + sig + "_16k.f32");
    const std::vector<float> input = ast_input_1024(fbank.compute(wav.data(), wav.size()));
    const AstOutput out = model->forward(input.data());
    const double e = relative_error(out.pooled, act.read_f32(sig + ".pooled"));
    std::printf("[ %-11s ] pooled from the waveform: relative error %.3g\n", sig.c_str(), e);
    EXPECT_LE(e, 1e-4);
  }
}

// The real geometry (768-d, 12 blocks, 12 heads, every key of audioset_10_10_0.4593.pth) with
// the fixtures' formula weights, against the original full-size model on both its inputs.
TEST(AstModel, FullSizeMatchesTheOriginalWithFormulaWeights) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  testutil::TempDir temp;
  const std::string path = temp.path() + "/ast_formula.safetensors";
  testutil::write_formula_checkpoint(
      kFixtures + "/manifests/ast_base384_10_10.manifest.json", path,
      [](const std::string&, const std::vector<int64_t>&) { return std::vector<float>{}; });
  EXPECT_EQ(SafetensorsFile(path).size(), 159u);  // every key of the manifest
  auto model = AstModel::load(path, 2);
  EXPECT_EQ(model->embedding_dim(), 768);
  SafetensorsFile front(kFrontEnd),
      ref(kFixtures + "/fullsize/ast_base384_formula.outputs.safetensors");
  for (const std::string sig : {"noise", "speech"}) {
    SCOPED_TRACE(sig);
    const std::vector<float> input = front.read_f32(sig + ".input_1024");
    AstTaps taps;
    const AstOutput out = model->forward(input.data(), &taps);
    const double e_patch = absolute_error(testutil::token_mean(taps.tensors.at("patch_embed")),
                                          ref.read_f32(sig + ".patch_embed_tokmean"));
    const double e_block0 = absolute_error(testutil::token_mean(taps.tensors.at("block0")),
                                           ref.read_f32(sig + ".block0_tokmean"));
    const double e_pool = relative_error(out.pooled, ref.read_f32(sig + ".pooled"));
    const double e_logit = relative_error(out.logits, ref.read_f32(sig + ".logits"));
    std::printf("[ %-6s ] full size: token means %.3g / %.3g, pooled rel %.3g, logits rel %.3g\n",
                sig.c_str(), e_patch, e_block0, e_pool, e_logit);
    EXPECT_LE(e_patch, 1e-4);
    EXPECT_LE(e_block0, 1e-4);
    EXPECT_LE(e_pool, 1e-4);
    EXPECT_LE(e_logit, 1e-4);
  }
}

TEST(AstModel, LoadsTheHuggingFaceNaming) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  testutil::TempDir temp;
  const std::string path = temp.path() + "/hf_ast.safetensors";
  testutil::rename_checkpoint(
      SafetensorsFile(kWeights), path, [](const std::string& key) -> std::vector<std::string> {
        if (key.find(".head") != std::string::npos) return {};
        const std::string root = "audio_spectrogram_transformer.";
        const std::string name = testutil::replaced(
            key, {{"module.v.cls_token", root + "embeddings.cls_token"},
                  {"module.v.dist_token", root + "embeddings.distillation_token"},
                  {"module.v.pos_embed", root + "embeddings.position_embeddings"},
                  {"module.v.patch_embed.proj.", root + "embeddings.patch_embeddings.projection."},
                  {"module.v.blocks.", root + "encoder.layer."},
                  {"module.v.norm.", root + "layernorm."},
                  {"module.mlp_head.0.", "classifier.layernorm."},
                  {"module.mlp_head.1.", "classifier.dense."}});
        return testutil::hugging_face_block_names(name, "attention.attention.",
                                                  "attention.output.dense.");
      });
  EXPECT_TRUE(SafetensorsFile(path).contains(
      "audio_spectrogram_transformer.encoder.layer.1.attention.attention.value.weight"));
  SafetensorsFile front(kFrontEnd);
  const std::vector<float> input = front.read_f32("speech.input_1024");
  const AstOutput hf = AstModel::load(path, 1, 4)->forward(input.data());
  const AstOutput original = AstModel::load(kWeights, 1, 4)->forward(input.data());
  EXPECT_EQ(hf.pooled, original.pooled);
  EXPECT_EQ(hf.logits, original.logits);
}

TEST(AstModel, BadCheckpointsAreRefused) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  EXPECT_THROW(AstModel::load(kWeights, 1, 5), Error);  // 64 dimensions in 5 heads
  EXPECT_THROW(AstModel::load(kWeights, 0), Error);
  // A CNN14 checkpoint is not an AST one.
  EXPECT_THROW(AstModel::load(kFixtures + "/models/panns_cnn14_r16.weights.safetensors"), Error);
}

}  // namespace
}  // namespace earmark
