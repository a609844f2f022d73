#include "earmark/embeddings/clap_htsat.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/fixtures_test_util.h"
#include "earmark/common/safetensors.h"
#include "earmark/common/test_audio_test_util.h"

namespace earmark {
namespace {

using testutil::absolute_error;
using testutil::kFixtures;
using testutil::read_f32_file;
using testutil::relative_error;

const std::string kWeights = kFixtures + "/models/laion_clap_htsat_r16.weights.safetensors";
const std::string kActivations = kFixtures + "/models/laion_clap_htsat_r16.activations.safetensors";

// A full-size checkpoint with every key of a manifest: formula weights; the computed buffers as
// the model code computes them: mel filters, the STFT kernels as zeros (the port skips them), and
// the Swin buffers, which depend only on the 8x8 window and the stage's grid, as the reduced
// fixture model (the same grids) stores them.
void write_full_checkpoint(const std::string& manifest, const std::string& path) {
  const SafetensorsFile reduced(kWeights);
  auto stage_key = [](const std::string& key) {  // "...layers.S.blocks.J.x" -> stage S, block 1
    const size_t blocks = key.find(".blocks.");
    const size_t after = key.find('.', blocks + 8);
    return key.substr(0, blocks + 8) + "1" + key.substr(after);
  };
  testutil::write_formula_checkpoint(
      manifest, path,
      [&](const std::string& key, const std::vector<int64_t>& shape) {
        if (key.find("melW") != std::string::npos)
          return slaney_mel_filters(SlaneyLogMelOptions::clap_htsat_48k());
        if (key.find("attn_mask") != std::string::npos) return reduced.read_f32(stage_key(key));
        return testutil::zeros_of(shape);
      },
      nullptr,
      [&](const std::string& key, const std::vector<int64_t>&) {
        return reduced.read_i64(stage_key(key));
      });
  EXPECT_EQ(SafetensorsFile(path).size(), testutil::read_manifest(manifest).size());
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return ab / std::sqrt(aa * bb);
}

// The original's repeat-pad: whole copies, then zeros to 10 s at 48 kHz.
TEST(ClapHtsat, RepeatPadsShortClipsAsTheOriginal) {
  std::vector<float> clip(177600);
  for (size_t i = 0; i < clip.size(); ++i) clip[i] = float(i % 1000) / 1000.0f + 0.001f;
  const std::vector<float> padded = clap_repeat_pad(clip.data(), clip.size());
  ASSERT_EQ(padded.size(), kClapClipSamples);
  EXPECT_EQ(padded[0], clip[0]);
  EXPECT_EQ(padded[177600], clip[0]);  // the second copy
  EXPECT_EQ(padded[2 * 177600 - 1], clip.back());
  EXPECT_EQ(padded[2 * 177600], 0.0f);  // a third does not fit: zeros
  EXPECT_EQ(padded.back(), 0.0f);
  std::vector<float> longer(600000, 0.5f);
  longer[480000] = 2.0f;
  const std::vector<float> cut = clap_repeat_pad(longer.data(), longer.size());
  ASSERT_EQ(cut.size(), kClapClipSamples);
  EXPECT_EQ(cut.back(), 0.5f);  // the first 10 s
  EXPECT_EQ(clap_repeat_pad(nullptr, 0), std::vector<float>(kClapClipSamples, 0.0f));
}

// Fed the stored log-mel of the noise clip (exactly 10 s), every stored activation matches.
TEST(ClapHtsat, MatchesTheOriginalLayerByLayer) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  auto model = ClapHtsat::load(kWeights);
  EXPECT_EQ(model->embedding_dim(), 128);
  EXPECT_EQ(model->joint_dim(), 512);
  EXPECT_EQ(model->classes(), 527);
  EXPECT_EQ(model->front_end().sample_rate, 48000);
  SafetensorsFile act(kActivations),
      front(kFixtures + "/frontend/clap_htsat_48k_logmel.safetensors");
  const std::vector<float> logmel = front.read_f32("noise.logmel");
  ASSERT_EQ(logmel.size(), 1001u * 64);
  ClapTaps taps;
  const ClapOutput out = model->forward_logmel(logmel.data(), 1, &taps).at(0);
  for (const char* name : {"bn0", "wav2img", "patch_embed", "layer0", "norm"}) {
    const auto& [shape, values] = taps.tensors.at(name);
    EXPECT_EQ(shape, act.info(std::string("noise.") + name).shape) << name;
    const double e = relative_error(values, act.read_f32(std::string("noise.") + name));
    std::printf("[ noise ] %-12s relative error %.3g\n", name, e);
    EXPECT_LE(e, 1e-5) << name;
  }
  const std::pair<const char*, const std::vector<float>*> outputs[] = {
      {"embedding", &out.embedding},
      {"clipwise_output", &out.clipwise},
      {"projection", &out.projection},
      {"clap_embedding", &out.joint}};
  for (const auto& [name, values] : outputs) {
    const double e = relative_error(*values, act.read_f32(std::string("noise.") + name));
    std::printf("[ noise ] %-15s relative error %.3g\n", name, e);
    EXPECT_LE(e, 1e-5) << name;
  }
}

// From the 48 kHz waveform, repeat-padded, through our own log-mel.
TEST(ClapHtsat, MatchesTheOriginalFromTheWaveform) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  auto model = ClapHtsat::load(kWeights, 2);
  SafetensorsFile act(kActivations);
  for (const std::string sig : {"noise", "speech", "chord_chirp"}) {
    SCOPED_TRACE(sig);
    const std::vector<float> wav = read_f32_file(kFixtures + "/inputs/" + sig + "_48k.f32");
    ClapTaps taps;
    const ClapOutput out = model->forward(wav.data(), wav.size(), &taps);
    const double front_tolerance = sig == "chord_chirp" ? 1e-2 : 1e-3;
    const double e_bn0 = absolute_error(taps.tensors.at("bn0").second, act.read_f32(sig + ".bn0"));
    const double e_img =
        absolute_error(taps.tensors.at("wav2img").second, act.read_f32(sig + ".wav2img"));
    const double e_emb = relative_error(out.embedding, act.read_f32(sig + ".embedding"));
    const double e_clip = absolute_error(out.clipwise, act.read_f32(sig + ".clipwise_output"));
    const std::vector<float> joint = act.read_f32(sig + ".clap_embedding");
    const double e_joint = absolute_error(out.joint, joint);
    const double cos = cosine(out.joint, joint);
    std::printf(
        "[ %-11s ] bn0 abs %.3g, wav2img abs %.3g, embedding rel %.3g, clipwise abs %.3g, "
        "joint abs %.3g, cosine 1 - %.3g\n",
        sig.c_str(), e_bn0, e_img, e_emb, e_clip, e_joint, 1 - cos);
    EXPECT_LE(e_bn0, front_tolerance);
    EXPECT_LE(e_img, front_tolerance);
    EXPECT_LE(e_emb, 1e-4);
    EXPECT_LE(e_clip, 1e-4);
    EXPECT_LE(e_joint, 1e-5);
    EXPECT_GE(cos, 0.99999);
  }
}

// The Swin buffers the port computes (relative position index, shift masks) are the stored ones:
// a checkpoint without them, as the Hugging Face conversions are, gives the same output.
TEST(ClapHtsat, ComputedSwinBuffersEqualTheStoredOnes) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  testutil::TempDir temp;
  const std::string path = temp.path() + "/without_buffers.safetensors";
  SafetensorsFile file(kWeights);
  int dropped = 0;
  testutil::rename_checkpoint(file, path, [&](const std::string& key) {
    const bool keep = key.find("relative_position_index") == std::string::npos &&
                      key.find("attn_mask") == std::string::npos;
    dropped += !keep;
    return keep ? std::vector<std::string>{key} : std::vector<std::string>{};
  });
  EXPECT_EQ(dropped, 8 + 3);  // an index per block, a mask per shifted block of stages 0-2
  const std::vector<float> logmel =
      SafetensorsFile(kFixtures + "/frontend/clap_htsat_48k_logmel.safetensors")
          .read_f32("noise.logmel");
  const ClapOutput stored = ClapHtsat::load(kWeights)->forward_logmel(logmel.data(), 1).at(0);
  const ClapOutput computed = ClapHtsat::load(path)->forward_logmel(logmel.data(), 1).at(0);
  EXPECT_EQ(stored.embedding, computed.embedding);
  EXPECT_EQ(stored.joint, computed.joint);
}

// Clips in one batch give what each gives alone.
TEST(ClapHtsat, BatchedClipsMatchSingleOnes) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  auto model = ClapHtsat::load(kWeights, 2);
  SafetensorsFile front(kFixtures + "/frontend/clap_htsat_48k_logmel.safetensors");
  std::vector<float> two = front.read_f32("noise.logmel");
  const std::vector<float> speech = read_f32_file(kFixtures + "/inputs/speech_48k.f32");
  const std::vector<float> clip = clap_repeat_pad(speech.data(), speech.size());
  SlaneyLogMel logmel(model->front_end());
  const std::vector<float> second = logmel.compute(clip.data(), clip.size());
  two.insert(two.end(), second.begin(), second.end());
  const std::vector<ClapOutput> batch = model->forward_logmel(two.data(), 2);
  ASSERT_EQ(batch.size(), 2u);
  const ClapOutput alone = model->forward_logmel(second.data(), 1).at(0);
  EXPECT_LE(relative_error(batch[1].joint, alone.joint), 1e-6);
  EXPECT_GT(relative_error(batch[0].joint, alone.joint), 1e-2);
}

// The real geometry (HTSAT-tiny: 96 wide, depths 2-2-6-2, every audio-side key of
// 630k-audioset-best.pt) with the fixtures' formula weights, against the original full-size model.
TEST(ClapHtsat, FullSizeMatchesTheOriginalWithFormulaWeights) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  testutil::TempDir temp;
  const std::string path = temp.path() + "/clap_formula.safetensors";
  write_full_checkpoint(kFixtures + "/manifests/laion_clap_htsat_tiny.manifest.json", path);
  auto model = ClapHtsat::load(path, 2);
  EXPECT_EQ(model->embedding_dim(), 768);
  EXPECT_EQ(model->joint_dim(), 512);
  SafetensorsFile ref(kFixtures + "/fullsize/laion_clap_htsat_tiny_formula.outputs.safetensors");
  using testutil::token_mean;
  for (const std::string sig : {"noise", "speech"}) {
    SCOPED_TRACE(sig);
    const std::vector<float> wav = read_f32_file(kFixtures + "/inputs/" + sig + "_48k.f32");
    ClapTaps taps;
    const ClapOutput out = model->forward(wav.data(), wav.size(), &taps);
    const auto& norm = taps.tensors.at("norm");
    const std::vector<float> token0(norm.second.begin(), norm.second.begin() + 768);
    const double e_patch = absolute_error(token_mean(taps.tensors.at("patch_embed")),
                                          ref.read_f32(sig + ".patch_embed_tokmean"));
    const double e_layer0 = absolute_error(token_mean(taps.tensors.at("layer0")),
                                           ref.read_f32(sig + ".layer0_tokmean"));
    const double e_token0 = relative_error(token0, ref.read_f32(sig + ".norm_token0"));
    const double e_emb = relative_error(out.embedding, ref.read_f32(sig + ".embedding"));
    const double e_clip = relative_error(out.clipwise, ref.read_f32(sig + ".clipwise_output"));
    const double e_proj = relative_error(out.projection, ref.read_f32(sig + ".projection"));
    const double e_joint = relative_error(out.joint, ref.read_f32(sig + ".clap_embedding"));
    std::printf(
        "[ %-6s ] full size: token means %.3g / %.3g, token 0 rel %.3g, embedding rel %.3g, "
        "clipwise rel %.3g, projection rel %.3g, joint rel %.3g\n",
        sig.c_str(), e_patch, e_layer0, e_token0, e_emb, e_clip, e_proj, e_joint);
    EXPECT_LE(e_patch, 1e-4);
    EXPECT_LE(e_layer0, 1e-4);
    EXPECT_LE(e_token0, 1e-4);
    EXPECT_LE(e_emb, 1e-4);
    EXPECT_LE(e_clip, 1e-4);
    EXPECT_LE(e_proj, 1e-4);
    EXPECT_LE(e_joint, 1e-4);
  }
}

// The Hugging Face naming (laion/clap-htsat-unfused): the same weights under its names, qkv split,
// the tag head, mel filters and shift masks dropped, the text side present, give the same joint
// embedding.
TEST(ClapHtsat, LoadsTheHuggingFaceNaming) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  testutil::TempDir temp;
  const std::string path = temp.path() + "/hf_clap.safetensors";
  SafetensorsFile file(kWeights);
  testutil::rename_checkpoint(file, path, [](const std::string& key) -> std::vector<std::string> {
    for (const char* dropped : {"melW", "attn_mask", "tscam_conv"})
      if (key.find(dropped) != std::string::npos) return {};
    if (key == "module.logit_scale_a") return {"text_model.embeddings.word_embeddings.weight"};
    const std::string name =
        testutil::replaced(key, {{"module.audio_branch.", "audio_model.audio_encoder."},
                                 {"encoder.bn0.", "encoder.batch_norm."},
                                 {"module.audio_projection.0.", "audio_projection.linear1."},
                                 {"module.audio_projection.2.", "audio_projection.linear2."}});
    if (name.find(".blocks.") == std::string::npos) return {name};
    return testutil::hugging_face_block_names(name, "attention.self.", "attention.output.dense.");
  });
  EXPECT_FALSE(SafetensorsFile(path).contains("audio_model.audio_encoder.tscam_conv.weight"));
  auto hf = ClapHtsat::load(path);
  EXPECT_EQ(hf->classes(), 0);
  const std::vector<float> logmel =
      SafetensorsFile(kFixtures + "/frontend/clap_htsat_48k_logmel.safetensors")
          .read_f32("noise.logmel");
  const ClapOutput out = hf->forward_logmel(logmel.data(), 1).at(0);
  const ClapOutput original = ClapHtsat::load(kWeights)->forward_logmel(logmel.data(), 1).at(0);
  EXPECT_TRUE(out.clipwise.empty());
  EXPECT_EQ(out.embedding, original.embedding);
  EXPECT_EQ(out.joint, original.joint);
}

// Every audio-side key of the HTSAT-base checkpoints (music_*_epoch_15_*.pt: 128 wide, depths
// 2-2-12-2, a 1024-d latent) loads, and the geometry is read from them.
TEST(ClapHtsat, TheBaseCheckpointLoads) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  testutil::TempDir temp;
  const std::string path = temp.path() + "/clap_base.safetensors";
  write_full_checkpoint(kFixtures + "/manifests/laion_clap_htsat_base.manifest.json", path);
  auto model = ClapHtsat::load(path, 2);
  EXPECT_EQ(model->embedding_dim(), 1024);
  EXPECT_EQ(model->joint_dim(), 512);
  EXPECT_EQ(model->classes(), 527);
  const std::vector<float> wav = read_f32_file(kFixtures + "/inputs/speech_48k.f32");
  const ClapOutput out = model->forward(wav.data(), wav.size());
  double norm = 0;
  for (float v : out.joint) norm += double(v) * v;
  EXPECT_NEAR(norm, 1.0, 1e-5);
}

TEST(ClapHtsat, BadCheckpointsAreRefused) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  EXPECT_THROW(ClapHtsat::load(kWeights, 0), Error);
  try {
    ClapHtsat::load(kFixtures + "/models/panns_cnn14_r16.weights.safetensors");
    FAIL() << "a CNN14 checkpoint loaded as CLAP";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a checkpoint of LAION-CLAP HTSAT"), std::string::npos)
        << e.what();
  }
  // One block's attention weights gone: named.
  testutil::TempDir temp;
  const std::string path = temp.path() + "/missing.safetensors";
  testutil::rename_checkpoint(SafetensorsFile(kWeights), path, [](const std::string& key) {
    return key != "module.audio_branch.layers.2.blocks.1.attn.qkv.weight"
               ? std::vector<std::string>{key}
               : std::vector<std::string>{};
  });
  try {
    ClapHtsat::load(path);
    FAIL() << "a checkpoint with a key missing loaded";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("missing 1: audio_branch.layers.2.blocks.1.attn.qkv.weight"),
        std::string::npos)
        << e.what();
  }
  // One tensor under two keys (with and without the DDP prefix): refused, not overwritten.
  const std::string twice = temp.path() + "/twice.safetensors";
  {
    SafetensorsFile file(kWeights);
    std::vector<SafetensorsTensor> tensors;
    for (const std::string& key : file.names()) {
      const auto& info = file.info(key);
      tensors.push_back({key, info.dtype, info.shape, file.data(key), size_t(info.byte_size())});
    }
    const auto& norm = file.info("module.audio_branch.norm.weight");
    tensors.push_back({"audio_branch.norm.weight", norm.dtype, norm.shape,
                       file.data("module.audio_branch.norm.weight"), size_t(norm.byte_size())});
    write_safetensors(twice, tensors);
  }
  try {
    ClapHtsat::load(twice);
    FAIL() << "a checkpoint with a tensor twice loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("are both audio_branch.norm.weight"), std::string::npos)
        << e.what();
  }
  // A split attention with its value piece gone: named.
  const std::string split = temp.path() + "/split.safetensors";
  testutil::rename_checkpoint(SafetensorsFile(kWeights), split, [](const std::string& key) {
    const std::string qkv = "module.audio_branch.layers.0.blocks.0.attn.qkv.weight";
    if (key != qkv) return std::vector<std::string>{key};
    const std::string head = "audio_encoder.layers.0.blocks.0.attention.self.";
    return std::vector<std::string>{head + "query.weight", head + "key.weight"};
  });
  try {
    ClapHtsat::load(split);
    FAIL() << "a checkpoint with a piece missing loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lacks piece 3 of 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace earmark
