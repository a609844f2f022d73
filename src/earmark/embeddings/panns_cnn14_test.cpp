#include "earmark/embeddings/panns_cnn14.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/fixtures_test_util.h"
#include "earmark/common/safetensors.h"
#include "earmark/common/test_audio_test_util.h"

namespace earmark {
namespace {

namespace fs = std::filesystem;

using testutil::absolute_error;
using testutil::kFixtures;
using testutil::read_f32_file;
using testutil::relative_error;
const std::string kWeights = kFixtures + "/models/panns_cnn14_r16.weights.safetensors";
const std::string kActivations = kFixtures + "/models/panns_cnn14_r16.activations.safetensors";
const char* const kSignals[] = {"noise", "speech", "chord_chirp", "silence"};

// Fed the stored log-mel, every stored activation matches the original's to float rounding.
TEST(PannsCnn14, MatchesTheOriginalLayerByLayer) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  auto model = PannsCnn14::load(kWeights);
  EXPECT_EQ(model->embedding_dim(), 128);
  EXPECT_EQ(model->classes(), 527);
  EXPECT_EQ(model->front_end().sample_rate, 32000);
  SafetensorsFile act(kActivations);
  for (const char* sig : kSignals) {
    SCOPED_TRACE(sig);
    const std::string s = sig;
    const std::vector<float> logmel = act.read_f32(s + ".logmel");
    Cnn14Taps taps;
    const Cnn14Output out = model->forward_logmel(logmel.data(), logmel.size() / 64, &taps);
    for (const char* name : {"bn0", "conv_block1", "conv_block6"}) {
      const auto& [shape, values] = taps.tensors.at(name);
      EXPECT_EQ(shape, act.info(s + "." + name).shape) << name;
      const double e = relative_error(values, act.read_f32(s + "." + name));
      std::printf("[ %-11s ] %-12s relative error %.3g\n", sig, name, e);
      EXPECT_LE(e, 1e-5) << name;
    }
    const double e_emb = relative_error(out.embedding, act.read_f32(s + ".embedding"));
    const double e_clip = relative_error(out.clipwise, act.read_f32(s + ".clipwise_output"));
    std::printf("[ %-11s ] embedding %.3g, clipwise %.3g\n", sig, e_emb, e_clip);
    EXPECT_LE(e_emb, 1e-5);
    EXPECT_LE(e_clip, 1e-5);
  }
}

// From the waveform, with our own front end: the tolerances of a different STFT.
TEST(PannsCnn14, MatchesTheOriginalFromTheWaveform) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  auto model = PannsCnn14::load(kWeights);
  SafetensorsFile act(kActivations);
  for (const char* sig : kSignals) {
    SCOPED_TRACE(sig);
    const std::string s = sig;
    const std::vector<float> wav = read_f32_file(kFixtures + "/inputs/" + s + "_32k.f32");
    Cnn14Taps taps;
    const Cnn14Output out = model->forward(wav.data(), wav.size(), &taps);
    const double e_bn0 = absolute_error(taps.tensors.at("bn0").second, act.read_f32(s + ".bn0"));
    const double e_emb = relative_error(out.embedding, act.read_f32(s + ".embedding"));
    const double e_clip = absolute_error(out.clipwise, act.read_f32(s + ".clipwise_output"));
    std::printf("[ %-11s ] bn0 abs %.3g, embedding rel %.3g, clipwise abs %.3g\n", sig, e_bn0,
                e_emb, e_clip);
    EXPECT_LE(e_bn0, s == "chord_chirp" ? 1e-2 : 1e-3);
    EXPECT_LE(e_emb, 1e-4);
    EXPECT_LE(e_clip, 1e-4);
  }
  std::vector<float> short_clip(3000, 0.1f);  // 10 frames: too short for five poolings
  EXPECT_THROW(model->forward(short_clip.data(), short_clip.size()), Error);
}

// Per-channel mean over batch, time and frequency of a [1, C, T, F] activation.
std::vector<float> channel_means(const std::pair<std::vector<int64_t>, std::vector<float>>& tap) {
  const auto& [shape, values] = tap;
  const size_t channels = size_t(shape[1]), per = values.size() / channels;
  std::vector<float> out(channels);
  for (size_t c = 0; c < channels; ++c) {
    double sum = 0;
    for (size_t i = 0; i < per; ++i) sum += values[c * per + i];
    out[c] = float(sum / double(per));
  }
  return out;
}

// The real geometry (2048-d, 81.9 M values, every key of the published checkpoint) with the
// fixtures' formula weights, against the original full-size model's outputs.
TEST(PannsCnn14, FullSizeMatchesTheOriginalWithFormulaWeights) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  testutil::TempDir temp;
  const std::string path = temp.path() + "/cnn14_formula.safetensors";
  testutil::write_formula_checkpoint(
      kFixtures + "/manifests/panns_cnn14_32k.manifest.json", path,
      [](const std::string& key, const std::vector<int64_t>& shape) {
        // Every key is in the file. The mel filters are librosa's, as the model code computes
        // them; the STFT kernels are zeros (the port computes its own STFT and skips them).
        return key == "logmel_extractor.melW"
                   ? slaney_mel_filters(SlaneyLogMelOptions::panns_cnn14_32k())
                   : testutil::zeros_of(shape);
      });
  EXPECT_EQ(SafetensorsFile(path).size(), 84u);  // every key of the manifest
  auto model = PannsCnn14::load(path, 2);
  EXPECT_EQ(model->embedding_dim(), 2048);
  EXPECT_EQ(model->classes(), 527);
  SafetensorsFile ref(kFixtures + "/fullsize/panns_cnn14_32k_formula.outputs.safetensors");
  for (const std::string sig : {"noise", "speech"}) {
    SCOPED_TRACE(sig);
    const std::vector<float> wav = read_f32_file(kFixtures + "/inputs/" + sig + "_32k.f32");
    Cnn14Taps taps;
    const Cnn14Output out = model->forward(wav.data(), wav.size(), &taps);
    const double e_emb = relative_error(out.embedding, ref.read_f32(sig + ".embedding"));
    const double e_clip = relative_error(out.clipwise, ref.read_f32(sig + ".clipwise_output"));
    const double e_c1 = absolute_error(channel_means(taps.tensors.at("conv_block1")),
                                       ref.read_f32(sig + ".conv_block1_chmean"));
    const double e_c6 = absolute_error(channel_means(taps.tensors.at("conv_block6")),
                                       ref.read_f32(sig + ".conv_block6_chmean"));
    std::printf(
        "[ %-6s ] full size: embedding rel %.3g, clipwise rel %.3g, channel means %.3g / "
        "%.3g\n",
        sig.c_str(), e_emb, e_clip, e_c1, e_c6);
    EXPECT_LE(e_emb, 1e-4);
    EXPECT_LE(e_clip, 1e-4);
    EXPECT_LE(e_c1, 1e-4);
    EXPECT_LE(e_c6, 1e-4);
  }
}

// Every key of the 16 kHz checkpoint (Cnn14_16k_mAP=0.438.pth) loads, into the 16 kHz front end.
TEST(PannsCnn14, The16kCheckpointLoadsWithItsFrontEnd) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  testutil::TempDir temp;
  const std::string path = temp.path() + "/cnn14_16k.safetensors";
  testutil::write_formula_checkpoint(
      kFixtures + "/manifests/panns_cnn14_16k.manifest.json", path,
      [](const std::string& key, const std::vector<int64_t>& shape) {
        return key == "logmel_extractor.melW"
                   ? slaney_mel_filters(SlaneyLogMelOptions::panns_cnn14_16k())
                   : testutil::zeros_of(shape);
      });
  EXPECT_EQ(SafetensorsFile(path).size(), 84u);
  auto model = PannsCnn14::load(path);
  EXPECT_EQ(model->front_end().sample_rate, 16000);
  EXPECT_EQ(model->embedding_dim(), 2048);
  std::vector<float> tone(16000);
  for (size_t i = 0; i < tone.size(); ++i) tone[i] = float(0.3 * std::sin(0.2 * double(i)));
  const Cnn14Output out = model->forward(tone.data(), tone.size());
  EXPECT_EQ(out.embedding.size(), 2048u);
  for (float v : out.clipwise) ASSERT_TRUE(v > 0 && v < 1);
}

// A checkpoint that does not fit is refused with every key named.
TEST(PannsCnn14, StrictLoadingNamesWhatDoesNotFit) {
  EARMARK_REQUIRE_FIXTURE(kWeights);
  SafetensorsFile file(kWeights);
  testutil::TempDir temp;
  const fs::path dir = temp.path();
  std::vector<float> extra(4, 1.0f);
  auto variant = [&](const std::string& name, const std::string& drop, bool add_extra,
                     const std::string& reshape) {
    std::vector<SafetensorsTensor> tensors;
    for (const std::string& key : file.names()) {
      if (key == drop) continue;
      const auto& info = file.info(key);
      SafetensorsTensor t{key, info.dtype, info.shape, file.data(key), size_t(info.byte_size())};
      if (key == reshape) t.shape = {info.shape[0], int64_t(info.num_elements / info.shape[0])};
      tensors.push_back(t);
    }
    if (add_extra) tensors.push_back({"head.weight", "F32", {4}, extra.data(), 16});
    const std::string path = (dir / name).string();
    write_safetensors(path, tensors);
    return path;
  };
  auto message = [](const std::string& path) {
    try {
      PannsCnn14::load(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("loaded");
  };
  const std::string missing =
      message(variant("missing.safetensors", "conv_block3.bn2.running_var", false, ""));
  EXPECT_NE(missing.find("missing 1: conv_block3.bn2.running_var"), std::string::npos) << missing;
  const std::string extra_key = message(variant("extra.safetensors", "", true, ""));
  EXPECT_NE(extra_key.find("unexpected 1: head.weight"), std::string::npos) << extra_key;
  const std::string shape =
      message(variant("shape.safetensors", "", false, "conv_block2.conv1.weight"));
  EXPECT_NE(shape.find("mismatched 1: conv_block2.conv1.weight (file F32 [8, 36]"),
            std::string::npos)
      << shape;
  EXPECT_NE(message((dir / "absent.safetensors").string()).find("absent"), std::string::npos);
  EXPECT_THROW(PannsCnn14::load(kWeights, 0), Error);
}

}  // namespace
}  // namespace earmark
