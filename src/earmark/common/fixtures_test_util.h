#pragma once
// The parity fixtures of ../shared/fixtures (outputs of the original AST, PANNs and CLAP code)
// for the tests that check our ports against them. Header-only, test code only.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/hash.h"
#include "earmark/common/safetensors.h"

namespace earmark {
namespace testutil {

inline const std::string kFixtures = EARMARK_SOURCE_DIR "/../shared/fixtures";

// Skips the calling GoogleTest test when a fixture file is absent (they sit in ../shared).
#define EARMARK_REQUIRE_FIXTURE(path)                                                    \
  do {                                                                                   \
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "fixture not found: " << (path); \
  } while (0)

// A fixture's raw little-endian float32 samples (`inputs/*.f32`).
inline std::vector<float> read_f32_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error("cannot open " + path);
  const std::streamsize bytes = f.tellg();
  f.seekg(0);
  std::vector<float> out(size_t(bytes) / sizeof(float));
  f.read(reinterpret_cast<char*>(out.data()), std::streamsize(out.size() * sizeof(float)));
  if (!f) throw Error("cannot read " + path);
  return out;
}

// max |ours - ref| / max |ref| (huge when the sizes differ).
inline double relative_error(const std::vector<float>& ours, const std::vector<float>& ref) {
  if (ours.size() != ref.size()) return 1e30;
  double worst = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    worst = std::max(worst, std::fabs(double(ours[i]) - double(ref[i])));
    scale = std::max(scale, std::fabs(double(ref[i])));
  }
  return scale > 0 ? worst / scale : worst;
}

// max |ours - ref| (huge when the sizes differ).
inline double absolute_error(const std::vector<float>& ours, const std::vector<float>& ref) {
  if (ours.size() != ref.size()) return 1e30;
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, std::fabs(double(ours[i]) - double(ref[i])));
  return worst;
}

// A front end's error against the original's, split where the fixtures' tolerances change: at a
// level of the reference (quiet bands carry only float round-off, and get a looser tolerance).
struct SplitError {
  double above = 0, below = 0;  // the worst absolute error where ref > level, and elsewhere
  size_t outside = 0;           // values beyond their side's tolerance
};

inline SplitError split_error(const std::vector<float>& ours, const std::vector<float>& ref,
                              float level, double tolerance_above, double tolerance_below) {
  SplitError e;
  for (size_t i = 0; i < ref.size() && i < ours.size(); ++i) {
    const double d = std::fabs(double(ours[i]) - double(ref[i]));
    const bool high = ref[i] > level;
    double& worst = high ? e.above : e.below;
    worst = std::max(worst, d);
    e.outside += d > (high ? tolerance_above : tolerance_below);
  }
  return e;
}

// The fixtures' formula weights (their README, section 4.1): full-size models are checked
// without storing their weights, each value a hash of the checkpoint key and the element index.
inline uint32_t fnv1a32(const std::string& key) {
  uint32_t h = 0x811C9DC5u;
  for (unsigned char b : key) h = (h ^ b) * 0x01000193u;
  return h;
}

// The (offset, scale) of a tensor's rule; false where the formula leaves the tensor to the model
// code (mel filters, STFT kernels, Swin buffers, batch counters).
inline bool formula_rule(const std::string& key, const std::vector<int64_t>& shape, double& offset,
                         double& scale) {
  for (const char* own : {"melW", "stft.conv_real", "stft.conv_imag", "relative_position_index",
                          "attn_mask", "num_batches_tracked"})
    if (key.find(own) != std::string::npos) return false;
  const std::string last = key.substr(key.rfind('.') + 1);
  auto ends_with = [&](const std::string& tail) {
    return key.size() >= tail.size() &&
           key.compare(key.size() - tail.size(), tail.size(), tail) == 0;
  };
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  const double fan_in = shape.empty() ? 1.0 : double(numel) / double(shape[0]);
  if (last == "running_mean") {
    ends_with("bn0.running_mean") ? (offset = -30, scale = 10) : (offset = 0, scale = 0.2);
  } else if (last == "running_var") {
    ends_with("bn0.running_var") ? (offset = 200, scale = 100) : (offset = 1, scale = 0.5);
  } else if (last == "cls_token" || last == "dist_token" || last == "pos_embed" ||
             last == "relative_position_bias_table") {
    offset = 0, scale = 0.8;
  } else if (last == "weight" && shape.size() == 1) {
    offset = 1, scale = 0.2;
  } else if (shape.size() >= 2 && (key.find("fc_audioset.") != std::string::npos ||
                                   key.find("tscam_conv.") != std::string::npos ||
                                   key.find("mlp_head.1.") != std::string::npos)) {
    offset = 0, scale = std::sqrt(6.0 / fan_in) / 8;
  } else if (shape.size() >= 2) {
    offset = 0, scale = std::sqrt(6.0 / fan_in);
  } else {
    offset = 0, scale = 0.1;
  }
  return true;
}

// The first `count` values of a tensor's formula weights (all when count is 0).
inline std::vector<float> formula_values(const std::string& key, const std::vector<int64_t>& shape,
                                         size_t count = 0) {
  double offset = 0, scale = 0;
  if (!formula_rule(key, shape, offset, scale)) throw Error(key + ": not set by the formula");
  size_t numel = 1;
  for (int64_t d : shape) numel *= size_t(d);
  if (count == 0 || count > numel) count = numel;
  const uint32_t seed = mix32(fnv1a32(key));
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) {
    const uint32_t h = mix32(uint32_t(i) + seed);
    const double u = double(h >> 8) / 16777216.0;
    out[i] = float(offset + scale * (2.0 * u - 1.0));
  }
  return out;
}

// The mean over tokens of a [1, tokens, width] activation (the full-size fixtures store these).
inline std::vector<float> token_mean(
    const std::pair<std::vector<int64_t>, std::vector<float>>& tap) {
  const size_t tokens = size_t(tap.first.at(1)), width = size_t(tap.first.at(2));
  std::vector<float> mean(width);
  for (size_t c = 0; c < width; ++c) {
    double sum = 0;
    for (size_t t = 0; t < tokens; ++t) sum += tap.second[t * width + c];
    mean[c] = float(sum / double(tokens));
  }
  return mean;
}

// Key -> shape of a real checkpoint, from `manifests/*.manifest.json`.
inline std::map<std::string, std::pair<std::vector<int64_t>, std::string>> read_manifest(
    const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error("cannot open " + path);
  const nlohmann::json j = nlohmann::json::parse(f);
  std::map<std::string, std::pair<std::vector<int64_t>, std::string>> out;
  for (const auto& [key, t] : j.at("tensors").items())
    out[key] = {t.at("shape").get<std::vector<int64_t>>(), t.at("dtype").get<std::string>()};
  return out;
}

// Writes a checkpoint of the manifest's keys filled with formula weights. Batch counters are
// 0 (I64); the other tensors the formula leaves to the model code come from `own`, or for I64
// ones `own_i64` (an empty result, or no function, leaves the key out of the file). `instead`,
// when given, replaces the formula's values (benchmarks draw weights like a trained network's).
inline void write_formula_checkpoint(
    const std::string& manifest, const std::string& out_path,
    const std::function<std::vector<float>(const std::string&, const std::vector<int64_t>&)>& own,
    const std::function<std::vector<float>(const std::string&, const std::vector<int64_t>&)>&
        instead = nullptr,
    const std::function<std::vector<int64_t>(const std::string&, const std::vector<int64_t>&)>&
        own_i64 = nullptr) {
  std::vector<std::vector<float>> values;
  std::vector<std::vector<int64_t>> integers;
  std::vector<int64_t> zero(1, 0);
  std::vector<SafetensorsTensor> tensors;
  const auto keys = read_manifest(manifest);
  values.reserve(keys.size());
  integers.reserve(keys.size());
  for (const auto& [key, t] : keys) {
    const auto& [shape, dtype] = t;
    double offset, scale;
    if (dtype == "int64") {
      if (key.find("num_batches_tracked") != std::string::npos) {
        tensors.push_back({key, "I64", shape, zero.data(), 8});
      } else if (own_i64) {
        integers.push_back(own_i64(key, shape));
        if (!integers.back().empty())
          tensors.push_back(
              {key, "I64", shape, integers.back().data(), integers.back().size() * 8});
      }
      continue;
    }
    if (!formula_rule(key, shape, offset, scale))
      values.push_back(own(key, shape));
    else
      values.push_back(instead ? instead(key, shape) : formula_values(key, shape));
    if (values.back().empty()) continue;
    tensors.push_back({key, "F32", shape, values.back().data(), values.back().size() * 4});
  }
  write_safetensors(out_path, tensors);
}

// Zeros for a tensor of this shape (the frozen STFT kernels a port computes itself).
inline std::vector<float> zeros_of(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return std::vector<float>(n, 0.0f);
}

// Writes a copy of `file` under other names: `rename` gives each key's new names. No name leaves
// the tensor out; n names split it into n equal pieces along its first dimension (as the Hugging
// Face conversions split attention's fused qkv). Tensors keep their order, dtype and bytes.
inline void rename_checkpoint(
    const SafetensorsFile& file, const std::string& out_path,
    const std::function<std::vector<std::string>(const std::string& key)>& rename) {
  std::vector<SafetensorsTensor> tensors;
  for (const std::string& key : file.names()) {
    const std::vector<std::string> names = rename(key);
    const auto& info = file.info(key);
    const size_t n = names.size();
    if (n == 0) continue;
    if (n > 1 && (info.shape.empty() || info.shape[0] % int64_t(n) != 0))
      throw Error(key + " does not split into " + std::to_string(n));
    std::vector<int64_t> shape = info.shape;
    if (n > 1) shape[0] /= int64_t(n);
    const size_t bytes = size_t(info.byte_size()) / n;
    for (size_t i = 0; i < n; ++i)
      tensors.push_back({names[i], info.dtype, shape,
                         static_cast<const uint8_t*>(file.data(key)) + i * bytes, bytes});
  }
  write_safetensors(out_path, tensors);
}

// `text` with each (from, to) of `rules` applied in order, first occurrences only.
inline std::string replaced(std::string text,
                            const std::vector<std::pair<std::string, std::string>>& rules) {
  for (const auto& [from, to] : rules) {
    const size_t at = text.find(from);
    if (at != std::string::npos) text.replace(at, from.size(), to);
  }
  return text;
}

// A transformer block's original (timm/Swin) names under the Hugging Face naming, for writing
// checkpoints the way its conversions do: norms and MLP renamed, `attn.proj.` to `<output>`, the
// rest of `attn.` under `<self>`, and `attn.qkv.` split into query, key and value pieces.
inline std::vector<std::string> hugging_face_block_names(const std::string& name,
                                                         const std::string& self,
                                                         const std::string& output) {
  const std::string renamed = replaced(name, {{".norm1.", ".layernorm_before."},
                                              {".norm2.", ".layernorm_after."},
                                              {".mlp.fc1.", ".intermediate.dense."},
                                              {".mlp.fc2.", ".output.dense."},
                                              {".attn.proj.", "." + output}});
  const size_t qkv = renamed.find(".attn.qkv.");
  if (qkv == std::string::npos) return {replaced(renamed, {{".attn.", "." + self}})};
  std::vector<std::string> pieces;
  for (const char* piece : {"query.", "key.", "value."})
    pieces.push_back(renamed.substr(0, qkv) + "." + self + piece +
                     renamed.substr(qkv + std::string(".attn.qkv.").size()));
  return pieces;
}

}  // namespace testutil
}  // namespace earmark
