#include "earmark/embeddings/clap_htsat.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "earmark/common/error.h"
#include "earmark/common/safetensors.h"
#include "earmark/embeddings/torch_state.h"

namespace earmark {
namespace {

namespace nn = torch::nn;

constexpr const char* kModel = "LAION-CLAP HTSAT";
// The published HTSAT configurations (tiny and base): a 256 x 256 image of 64 mel bins and four
// chunks of 256 frames, cut into 4x4 patches.
constexpr int64_t kMelBins = 64, kSpecSize = 256, kFreqRatio = kSpecSize / kMelBins, kPatch = 4,
                  kFrames = 1001, kImageFrames = kSpecSize * kFreqRatio;

nn::LayerNorm layer_norm(int64_t dim) { return nn::LayerNorm(nn::LayerNormOptions({dim})); }

// [B, H, W, C] -> [B * windows, window * window, C]; windows row-major over the grid, tokens
// row-major inside a window.
torch::Tensor window_partition(const torch::Tensor& x, int64_t window) {
  const int64_t b = x.size(0), h = x.size(1), w = x.size(2), c = x.size(3);
  return x.view({b, h / window, window, w / window, window, c})
      .permute({0, 1, 3, 2, 4, 5})
      .reshape({-1, window * window, c});
}

torch::Tensor window_reverse(const torch::Tensor& windows, int64_t window, int64_t h, int64_t w) {
  const int64_t c = windows.size(-1), b = windows.size(0) / ((h / window) * (w / window));
  return windows.view({b, h / window, w / window, window, window, c})
      .permute({0, 1, 3, 2, 4, 5})
      .reshape({b, h, w, c});
}

// Which pairs of tokens of a shifted window came from different regions of the rolled image:
// -100 for those (softmax then all but ignores them), 0 for the rest. [windows, n, n].
torch::Tensor shift_mask(int64_t resolution, int64_t window, int64_t shift) {
  torch::Tensor region = torch::zeros({1, resolution, resolution, 1});
  const int64_t bounds[4] = {0, resolution - window, resolution - shift, resolution};
  float label = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j, ++label)
      region.slice(1, bounds[i], bounds[i + 1]).slice(2, bounds[j], bounds[j + 1]).fill_(label);
  torch::Tensor ids = window_partition(region, window).squeeze(-1);  // [windows, n]
  torch::Tensor diff = ids.unsqueeze(1) - ids.unsqueeze(2);
  return torch::where(diff != 0, torch::full_like(diff, -100.0f), torch::zeros_like(diff));
}

// index[i][j] of the bias table for tokens i, j of a window: their row and column differences,
// shifted to be non-negative, row-major in a (2 window - 1)^2 table.
torch::Tensor relative_position_index(int64_t window) {
  torch::Tensor index = torch::empty({window * window, window * window}, torch::kInt64);
  auto a = index.accessor<int64_t, 2>();
  for (int64_t i = 0; i < window * window; ++i)
    for (int64_t j = 0; j < window * window; ++j)
      a[i][j] = (i / window - j / window + window - 1) * (2 * window - 1) +
                (i % window - j % window + window - 1);
  return index;
}

struct WindowAttentionImpl : nn::Module {
  torch::Tensor relative_position_bias_table, relative_position_index_;
  nn::Linear qkv{nullptr}, proj{nullptr};
  int64_t heads, window;
  WindowAttentionImpl(int64_t dim, int64_t heads_, int64_t window_)
      : heads(heads_), window(window_) {
    relative_position_bias_table = register_parameter(
        "relative_position_bias_table", torch::zeros({(2 * window - 1) * (2 * window - 1), heads}));
    relative_position_index_ =
        register_buffer("relative_position_index", relative_position_index(window));
    qkv = register_module("qkv", nn::Linear(dim, 3 * dim));
    proj = register_module("proj", nn::Linear(dim, dim));
  }
  // x: [B * windows, n, C]; mask: [windows, n, n] or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) {
    const int64_t bw = x.size(0), n = x.size(1), c = x.size(2), head_dim = c / heads;
    torch::Tensor t = qkv->forward(x).reshape({bw, n, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
    // The query is scaled before the product, as the original does: the rounding then matches.
    torch::Tensor q = t[0] * std::pow(double(head_dim), -0.5), k = t[1], v = t[2];
    torch::Tensor attn = torch::matmul(q, k.transpose(-2, -1));
    torch::Tensor bias = relative_position_bias_table.index({relative_position_index_.view(-1)})
                             .view({n, n, -1})
                             .permute({2, 0, 1});
    attn = attn + bias.unsqueeze(0);
    if (mask.defined()) {
      const int64_t windows = mask.size(0);
      attn = (attn.view({bw / windows, windows, heads, n, n}) + mask.unsqueeze(1).unsqueeze(0))
                 .view({-1, heads, n, n});
    }
    attn = torch::softmax(attn, -1);
    return proj->forward(torch::matmul(attn, v).transpose(1, 2).reshape({bw, n, c}));
  }
};
TORCH_MODULE(WindowAttention);

struct MlpImpl : nn::Module {
  nn::Linear fc1{nullptr}, fc2{nullptr};
  MlpImpl(int64_t dim, int64_t hidden) {
    fc1 = register_module("fc1", nn::Linear(dim, hidden));
    fc2 = register_module("fc2", nn::Linear(hidden, dim));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return fc2->forward(torch::gelu(fc1->forward(x)));  // exact (erf) GELU, as nn.GELU
  }
};
TORCH_MODULE(Mlp);

struct SwinBlockImpl : nn::Module {
  nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  WindowAttention attn{nullptr};
  Mlp mlp{nullptr};
  torch::Tensor attn_mask;
  int64_t resolution, window, shift;
  SwinBlockImpl(int64_t dim, int64_t heads, int64_t resolution_, int64_t window_, bool shifted)
      : resolution(resolution_), window(window_), shift(shifted ? window_ / 2 : 0) {
    // A stage no larger than one window has nothing to shift across.
    if (resolution <= window) window = resolution, shift = 0;
    norm1 = register_module("norm1", layer_norm(dim));
    attn = register_module("attn", WindowAttention(dim, heads, window));
    norm2 = register_module("norm2", layer_norm(dim));
    mlp = register_module("mlp", Mlp(dim, 4 * dim));
    if (shift > 0) attn_mask = register_buffer("attn_mask", shift_mask(resolution, window, shift));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t b = x.size(0), c = x.size(2);
    torch::Tensor y = norm1->forward(x).view({b, resolution, resolution, c});
    if (shift > 0) y = torch::roll(y, {-shift, -shift}, {1, 2});
    y = attn->forward(window_partition(y, window), attn_mask);
    y = window_reverse(y, window, resolution, resolution);
    if (shift > 0) y = torch::roll(y, {shift, shift}, {1, 2});
    torch::Tensor out = x + y.reshape({b, resolution * resolution, c});
    return out + mlp->forward(norm2->forward(out));
  }
};
TORCH_MODULE(SwinBlock);

// Halves the grid: each 2x2 neighbourhood, in the order (even row, even col), (odd, even),
// (even, odd), (odd, odd), concatenated, normed and reduced to twice the width.
struct PatchMergingImpl : nn::Module {
  nn::LayerNorm norm{nullptr};
  nn::Linear reduction{nullptr};
  int64_t resolution;
  PatchMergingImpl(int64_t dim, int64_t resolution_) : resolution(resolution_) {
    reduction =
        register_module("reduction", nn::Linear(nn::LinearOptions(4 * dim, 2 * dim).bias(false)));
    norm = register_module("norm", layer_norm(4 * dim));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t b = x.size(0), c = x.size(2);
    torch::Tensor g = x.view({b, resolution, resolution, c});
    using torch::indexing::Slice;
    auto part = [&](int64_t row, int64_t col) {
      return g.index({Slice(), Slice(row, torch::indexing::None, 2),
                      Slice(col, torch::indexing::None, 2), Slice()});
    };
    torch::Tensor merged =
        torch::cat({part(0, 0), part(1, 0), part(0, 1), part(1, 1)}, -1).view({b, -1, 4 * c});
    return reduction->forward(norm->forward(merged));
  }
};
TORCH_MODULE(PatchMerging);

struct StageImpl : nn::Module {
  std::vector<SwinBlock> blocks;
  PatchMerging downsample{nullptr};
  StageImpl(int64_t dim, int64_t depth, int64_t heads, int64_t resolution, int64_t window,
            bool merge) {
    auto list = register_module("blocks", nn::ModuleList());
    for (int64_t j = 0; j < depth; ++j) {
      blocks.push_back(SwinBlock(dim, heads, resolution, window, j % 2 == 1));
      list->push_back(blocks.back());
    }
    if (merge) downsample = register_module("downsample", PatchMerging(dim, resolution));
  }
  torch::Tensor forward(torch::Tensor x) {
    for (auto& block : blocks) x = block->forward(x);
    return downsample ? downsample->forward(x) : x;
  }
};
TORCH_MODULE(Stage);

struct Geometry {
  int64_t width = 0, window = 8, classes = 0, joint = 0;
  std::vector<int64_t> depths, heads;
};

struct HtsatImpl : nn::Module {
  nn::BatchNorm2d bn0{nullptr};
  nn::Conv2d proj{nullptr};
  nn::LayerNorm patch_norm{nullptr}, norm{nullptr};
  std::vector<Stage> stages;
  nn::Conv2d tscam_conv{nullptr};
  explicit HtsatImpl(const Geometry& g) {
    bn0 = register_module("bn0", nn::BatchNorm2d(kMelBins));
    auto patch_embed = register_module("patch_embed", std::make_shared<nn::Module>());
    proj = patch_embed->register_module(
        "proj", nn::Conv2d(nn::Conv2dOptions(1, g.width, kPatch).stride(kPatch)));
    patch_norm = patch_embed->register_module("norm", layer_norm(g.width));
    auto layers = register_module("layers", nn::ModuleList());
    int64_t dim = g.width, resolution = kSpecSize / kPatch;
    for (size_t s = 0; s < g.depths.size(); ++s) {
      const bool last = s + 1 == g.depths.size();
      stages.push_back(Stage(dim, g.depths[s], g.heads[s], resolution, g.window, !last));
      layers->push_back(stages.back());
      if (!last) dim *= 2, resolution /= 2;
    }
    norm = register_module("norm", layer_norm(dim));
    if (g.classes > 0)
      tscam_conv = register_module(
          "tscam_conv", nn::Conv2d(nn::Conv2dOptions(dim, g.classes, {2, 3}).padding({0, 1})));
  }
};
TORCH_MODULE(Htsat);

struct ClapAudioImpl : nn::Module {
  Htsat audio_branch{nullptr};
  nn::Linear projection1{nullptr}, projection2{nullptr};
  explicit ClapAudioImpl(const Geometry& g) {
    audio_branch = register_module("audio_branch", Htsat(g));
    const int64_t latent = g.width << (g.depths.size() - 1);
    auto projection = register_module("audio_projection", nn::Sequential());
    projection1 = nn::Linear(latent, g.joint);
    projection2 = nn::Linear(g.joint, g.joint);
    projection->push_back(projection1);
    projection->push_back(nn::ReLU());
    projection->push_back(projection2);
  }
};
TORCH_MODULE(ClapAudio);

// The geometry a checkpoint holds, from the shapes of its tensors.
Geometry read_geometry(const Checkpoint& checkpoint) {
  Geometry g;
  const std::vector<int64_t> patch = checkpoint.shape("audio_branch.patch_embed.proj.weight");
  if (patch.size() != 4 || patch[1] != 1 || patch[2] != kPatch || patch[3] != kPatch)
    throw Error(checkpoint.path() + ": patch_embed.proj.weight is not [width, 1, 4, 4]");
  g.width = patch[0];
  for (int s = 0;; ++s) {
    const std::string stage = "audio_branch.layers." + std::to_string(s) + ".blocks.";
    int64_t depth = 0;
    while (checkpoint.contains(stage + std::to_string(depth) + ".norm1.weight")) ++depth;
    if (depth == 0) break;
    const std::vector<int64_t> table =
        checkpoint.shape(stage + "0.attn.relative_position_bias_table");
    const int64_t side = table.size() == 2 ? int64_t(std::lround(std::sqrt(double(table[0])))) : 0;
    if (side * side != table.at(0) || side % 2 == 0)
      throw Error(checkpoint.path() +
                  ": a relative position table is not [(2 window - 1)^2, heads]");
    if (s == 0) g.window = (side + 1) / 2;
    g.depths.push_back(depth);
    g.heads.push_back(table[1]);
  }
  // Four stages take the 64x64 patch grid to 8x8, one window, which the checkpoints end with.
  if (g.depths.size() != 4 || g.window != 8)
    throw Error(checkpoint.path() + ": " + std::to_string(g.depths.size()) + " Swin stages and " +
                std::to_string(g.window) +
                "-token windows; the published HTSAT has 4 stages of 8x8 windows");
  if (checkpoint.contains("audio_branch.tscam_conv.weight"))
    g.classes = checkpoint.shape("audio_branch.tscam_conv.weight").at(0);
  g.joint = checkpoint.shape("audio_projection.2.weight").at(0);
  return g;
}

// The Hugging Face conversion's names (laion/clap-htsat-unfused, ClapModel or ClapAudioModel)
// onto the original ones.
bool hugging_face_clap_name(const std::string& key, std::string& name, int& part, int& parts) {
  for (const char* encoder : {"audio_model.audio_encoder.", "audio_encoder."})
    if (key.rfind(encoder, 0) == 0) {
      name = "audio_branch." + key.substr(std::string(encoder).size());
      name = replace_first(name, "audio_branch.batch_norm.", "audio_branch.bn0.");
      if (name.find(".blocks.") == std::string::npos) return true;
      name =
          hugging_face_block_name(name, "attention.self.", "attention.output.dense.", part, parts);
      return true;
    }
  if (key.rfind("audio_projection.linear", 0) == 0) {
    name = replace_first(replace_first(key, ".linear1.", ".0."), ".linear2.", ".2.");
    return true;
  }
  return false;
}

class ClapHtsatModel : public ClapHtsat {
 public:
  ClapHtsatModel(const std::string& path, int threads) : net_(nullptr), threads_(threads) {
    StateKeys keys;
    keys.prefixes = {"module."};
    // Not used by the audio embedding: the frozen STFT kernels and the mel filters (the front end
    // computes both; melW is taken from the file below), HTSAT's unused linear head, the
    // audio-to-text transform, the temperatures and the whole text side.
    keys.ignored = {"audio_branch.spectrogram_extractor.stft.conv_real.weight",
                    "audio_branch.spectrogram_extractor.stft.conv_imag.weight",
                    "audio_branch.logmel_extractor.melW",
                    "audio_branch.head.weight",
                    "audio_branch.head.bias",
                    "logit_scale_a",
                    "logit_scale_t"};
    keys.ignored_prefixes = {"audio_transform.", "text_branch.", "text_transform.",
                             "text_projection.", "text_model."};
    keys.optional_suffixes = {"attn.relative_position_index", "attn_mask"};
    keys.rename = hugging_face_clap_name;
    const Checkpoint checkpoint(path, keys, kModel);
    net_ = ClapAudio(read_geometry(checkpoint));
    checkpoint.load_into(*net_);
    net_->eval();
    net_->to(device_);
    logmel_ = std::make_unique<SlaneyLogMel>(front_end_);
    const std::string mel = "audio_branch.logmel_extractor.melW";
    if (checkpoint.contains(mel)) logmel_->set_mel_filters(tensor_values(checkpoint.read(mel)));
  }

  int embedding_dim() const override { return int(net_->projection1->options.in_features()); }
  int joint_dim() const override { return int(net_->projection2->options.out_features()); }
  int classes() const override {
    return net_->audio_branch->tscam_conv
               ? int(net_->audio_branch->tscam_conv->options.out_channels())
               : 0;
  }
  const SlaneyLogMelOptions& front_end() const override { return front_end_; }

  std::vector<ClapOutput> forward_logmel(const float* logmel, size_t batch,
                                         ClapTaps* taps) override {
    if (batch == 0) return {};
    torch::set_num_threads(threads_);
    torch::InferenceMode guard;
    HtsatImpl& h = *net_->audio_branch;
    const int64_t b = int64_t(batch);
    torch::Tensor x =
        torch::from_blob(const_cast<float*>(logmel), {b, 1, kFrames, kMelBins}).to(device_);
    x = h.bn0->forward(x.transpose(1, 3)).transpose(1, 3);
    tap(taps, "bn0", x.narrow(0, 0, 1));
    x = fold_into_image(x);
    tap(taps, "wav2img", x.narrow(0, 0, 1));
    x = h.patch_norm->forward(h.proj->forward(x).flatten(2).transpose(1, 2));
    tap(taps, "patch_embed", x.narrow(0, 0, 1));
    for (size_t s = 0; s < h.stages.size(); ++s) {
      x = h.stages[s]->forward(x);
      if (s == 0) tap(taps, "layer0", x.narrow(0, 0, 1));
    }
    x = h.norm->forward(x);
    tap(taps, "norm", x.narrow(0, 0, 1));
    // Tokens of the 8x8 grid back to a map whose rows are two frequency bands and whose columns
    // are the four time chunks side by side (32 steps), as the tag head reads it.
    const int64_t c = x.size(2), side = kSpecSize / kPatch >> (h.stages.size() - 1);
    const int64_t bands = side / kFreqRatio;
    torch::Tensor map = x.transpose(1, 2).reshape({b, c, kFreqRatio, bands, side});
    map = map.permute({0, 1, 3, 2, 4}).reshape({b, c, bands, -1});
    torch::Tensor embedding = map.flatten(2).mean(2);
    torch::Tensor clipwise;
    if (h.tscam_conv) clipwise = torch::sigmoid(h.tscam_conv->forward(map).flatten(2).mean(2));
    torch::Tensor projection =
        net_->projection2->forward(torch::relu(net_->projection1->forward(embedding)));
    torch::Tensor joint = projection / projection.norm(2, 1, true).clamp_min(1e-12);  // F.normalize
    std::vector<ClapOutput> out(batch);
    for (int64_t i = 0; i < b; ++i) {
      out[i].embedding = tensor_values(embedding[i]);
      if (clipwise.defined()) out[i].clipwise = tensor_values(clipwise[i]);
      out[i].projection = tensor_values(projection[i]);
      out[i].joint = tensor_values(joint[i]);
    }
    return out;
  }

  ClapOutput forward(const float* samples, size_t count, ClapTaps* taps) override {
    const std::vector<float> clip = clap_repeat_pad(samples, count);
    const std::vector<float> logmel = logmel_->compute(clip.data(), clip.size());
    return forward_logmel(logmel.data(), 1, taps).at(0);
  }

 private:
  // [B, 1, 1001, 64] -> [B, 1, 256, 256]: time stretched to 1024 frames (bicubic, corners
  // aligned), then mel rows with the four 256-frame chunks stacked: row = chunk * 64 + mel.
  static torch::Tensor fold_into_image(const torch::Tensor& x) {
    torch::Tensor t = torch::upsample_bicubic2d(x, {kImageFrames, kMelBins}, true);
    const int64_t b = x.size(0);
    t = t.permute({0, 1, 3, 2}).reshape({b, 1, kMelBins, kFreqRatio, kImageFrames / kFreqRatio});
    return t.permute({0, 1, 3, 2, 4}).reshape({b, 1, kSpecSize, kSpecSize});
  }

  ClapAudio net_;
  SlaneyLogMelOptions front_end_ = SlaneyLogMelOptions::clap_htsat_48k();
  std::unique_ptr<SlaneyLogMel> logmel_;
  int threads_;
  torch::Device device_ = inference_device();
};

}  // namespace

std::vector<float> clap_repeat_pad(const float* samples, size_t count) {
  std::vector<float> clip(kClapClipSamples, 0.0f);
  if (count == 0) return clip;
  if (count >= kClapClipSamples) {
    std::copy(samples, samples + kClapClipSamples, clip.begin());
    return clip;
  }
  for (size_t at = 0; at + count <= kClapClipSamples; at += count)
    std::copy(samples, samples + count, clip.begin() + at);
  return clip;
}

std::unique_ptr<ClapHtsat> ClapHtsat::load(const std::string& path, int threads) {
  if (threads < 1) throw Error("CLAP: threads must be at least 1");
  return std::make_unique<ClapHtsatModel>(path, threads);
}

}  // namespace earmark
