#include "earmark/embeddings/ast_model.h"

#include <torch/torch.h>

#include <cmath>
#include <string>

#include "earmark/common/error.h"
#include "earmark/common/safetensors.h"
#include "earmark/embeddings/torch_state.h"

namespace earmark {
namespace {

namespace nn = torch::nn;

// The patch grid of the released checkpoints: 16x16 patches every 10 mel bins and 10 frames.
constexpr int64_t kPatch = 16, kStride = 10;
constexpr int64_t kFreqPatches = (AstModel::kMelBins - kPatch) / kStride + 1;  // 12
constexpr int64_t kTimePatches = (AstModel::kFrames - kPatch) / kStride + 1;   // 101

struct AttentionImpl : nn::Module {
  nn::Linear qkv{nullptr}, proj{nullptr};
  int64_t heads;
  AttentionImpl(int64_t dim, int64_t heads_) : heads(heads_) {
    qkv = register_module("qkv", nn::Linear(dim, 3 * dim));
    proj = register_module("proj", nn::Linear(dim, dim));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t b = x.size(0), n = x.size(1), dim = x.size(2), head_dim = dim / heads;
    // q, k and v are consecutive thirds of qkv's output, the heads consecutive inside each.
    torch::Tensor t = qkv->forward(x).reshape({b, n, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
    torch::Tensor q = t[0], k = t[1], v = t[2];
    torch::Tensor attn = torch::softmax(
        torch::matmul(q, k.transpose(-2, -1)) * std::pow(double(head_dim), -0.5), -1);
    return proj->forward(torch::matmul(attn, v).transpose(1, 2).reshape({b, n, dim}));
  }
};
TORCH_MODULE(Attention);

struct MlpImpl : nn::Module {
  nn::Linear fc1{nullptr}, fc2{nullptr};
  explicit MlpImpl(int64_t dim) {
    fc1 = register_module("fc1", nn::Linear(dim, 4 * dim));
    fc2 = register_module("fc2", nn::Linear(4 * dim, dim));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return fc2->forward(torch::gelu(fc1->forward(x)));  // exact (erf) GELU, as timm's
  }
};
TORCH_MODULE(Mlp);

nn::LayerNorm layer_norm(int64_t dim, double eps) {
  return nn::LayerNorm(nn::LayerNormOptions({dim}).eps(eps));
}

// Pre-norm transformer block; timm's LayerNorm eps is 1e-6.
struct BlockImpl : nn::Module {
  nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
  BlockImpl(int64_t dim, int64_t heads) {
    norm1 = register_module("norm1", layer_norm(dim, 1e-6));
    attn = register_module("attn", Attention(dim, heads));
    norm2 = register_module("norm2", layer_norm(dim, 1e-6));
    mlp = register_module("mlp", Mlp(dim));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = x + attn->forward(norm1->forward(x));
    return x + mlp->forward(norm2->forward(x));
  }
};
TORCH_MODULE(Block);

// The DeiT backbone with AST's patch embedding (`v` in the checkpoint).
struct VisionImpl : nn::Module {
  torch::Tensor cls_token, dist_token, pos_embed;
  nn::Conv2d proj{nullptr};
  nn::ModuleList blocks;
  std::vector<Block> block_list;
  nn::LayerNorm norm{nullptr};
  VisionImpl(int64_t dim, int64_t depth, int64_t heads) {
    cls_token = register_parameter("cls_token", torch::zeros({1, 1, dim}));
    dist_token = register_parameter("dist_token", torch::zeros({1, 1, dim}));
    pos_embed =
        register_parameter("pos_embed", torch::zeros({1, kFreqPatches * kTimePatches + 2, dim}));
    auto patch_embed = register_module("patch_embed", std::make_shared<nn::Module>());
    proj = patch_embed->register_module(
        "proj", nn::Conv2d(nn::Conv2dOptions(1, dim, kPatch).stride(kStride)));
    blocks = register_module("blocks", nn::ModuleList());
    for (int64_t i = 0; i < depth; ++i) {
      block_list.push_back(Block(dim, heads));
      blocks->push_back(block_list.back());
    }
    norm = register_module("norm", layer_norm(dim, 1e-6));
  }
};
TORCH_MODULE(Vision);

struct AstImpl : nn::Module {
  Vision v{nullptr};
  nn::LayerNorm head_norm{nullptr};
  nn::Linear head{nullptr};
  AstImpl(int64_t dim, int64_t depth, int64_t heads, int64_t classes) {
    v = register_module("v", Vision(dim, depth, heads));
    // mlp_head: LayerNorm with PyTorch's default eps, then the classifier.
    auto mlp_head = register_module("mlp_head", nn::Sequential());
    head_norm = layer_norm(dim, 1e-5);
    head = nn::Linear(dim, classes);
    mlp_head->push_back(head_norm);
    mlp_head->push_back(head);
  }
};
TORCH_MODULE(Ast);

// The Hugging Face conversion's names (MIT/ast-finetuned-audioset-*) onto the original ones.
bool hugging_face_ast_name(const std::string& key, std::string& name, int& part, int& parts) {
  const std::string root = "audio_spectrogram_transformer.";
  if (key.rfind("classifier.", 0) == 0) {
    name = replace_first(replace_first(key, "classifier.layernorm.", "mlp_head.0."),
                         "classifier.dense.", "mlp_head.1.");
    return true;
  }
  if (key.rfind(root, 0) != 0) return false;
  std::string rest = key.substr(root.size());
  const std::pair<const char*, const char*> embeddings[] = {
      {"embeddings.cls_token", "v.cls_token"},
      {"embeddings.distillation_token", "v.dist_token"},
      {"embeddings.position_embeddings", "v.pos_embed"},
      {"embeddings.patch_embeddings.projection.", "v.patch_embed.proj."},
      {"layernorm.", "v.norm."}};
  for (const auto& [from, to] : embeddings)
    if (rest.rfind(from, 0) == 0) {
      name = to + rest.substr(std::string(from).size());
      return true;
    }
  if (rest.rfind("encoder.layer.", 0) != 0) return false;
  rest = "v.blocks." + rest.substr(std::string("encoder.layer.").size());
  name =
      hugging_face_block_name(rest, "attention.attention.", "attention.output.dense.", part, parts);
  return true;
}

class AstPort : public AstModel {
 public:
  AstPort(const std::string& path, int threads, int heads) : net_(nullptr), threads_(threads) {
    StateKeys keys;
    keys.prefixes = {"module."};
    keys.ignored = {"v.head.weight", "v.head.bias", "v.head_dist.weight", "v.head_dist.bias"};
    keys.rename = hugging_face_ast_name;
    const Checkpoint checkpoint(path, keys, "AST");
    const std::vector<int64_t> cls = checkpoint.shape("v.cls_token");
    if (cls.size() != 3) throw Error(path + ": v.cls_token is not [1, 1, dim]");
    const int64_t dim = cls[2];
    const std::vector<int64_t> pos = checkpoint.shape("v.pos_embed");
    if (pos.size() != 3 || pos[1] != kFreqPatches * kTimePatches + 2)
      throw Error(path + ": v.pos_embed has " + (pos.size() == 3 ? std::to_string(pos[1]) : "?") +
                  " positions; this port takes the released 10/10-stride checkpoints over 128 "
                  "bins x 1024 frames (1214 positions)");
    int64_t depth = 0;
    while (checkpoint.contains("v.blocks." + std::to_string(depth) + ".norm1.weight")) ++depth;
    if (heads == 0) heads = int(dim / 64);
    if (heads < 1 || dim % heads != 0)
      throw Error(path + ": " + std::to_string(dim) + " dimensions do not split into " +
                  std::to_string(heads) + " heads");
    const int64_t classes = checkpoint.shape("mlp_head.1.weight").at(0);
    net_ = Ast(dim, depth, heads, classes);
    checkpoint.load_into(*net_);
    net_->eval();
    net_->to(device_);
  }

  int embedding_dim() const override { return int(net_->v->cls_token.size(2)); }
  int classes() const override { return int(net_->head->options.out_features()); }

  AstOutput forward(const float* input, AstTaps* taps) override {
    return run(input, 1, taps).at(0);
  }

  std::vector<AstOutput> forward_batch(const float* inputs, size_t batch) override {
    return run(inputs, batch, nullptr);
  }

 private:
  std::vector<AstOutput> run(const float* inputs, size_t batch, AstTaps* taps) {
    if (batch == 0) return {};
    torch::set_num_threads(threads_);
    torch::InferenceMode guard;
    const int64_t b = int64_t(batch);
    // [time, mel] -> an image of mel rows and time columns.
    torch::Tensor x = torch::from_blob(const_cast<float*>(inputs), {b, 1, kFrames, kMelBins})
                          .to(device_)
                          .transpose(2, 3);
    VisionImpl& v = *net_->v;
    x = v.proj->forward(x).flatten(2).transpose(1, 2);  // tokens frequency-major
    tap(taps, "patch_embed", x.narrow(0, 0, 1));
    x = torch::cat({v.cls_token.expand({b, -1, -1}), v.dist_token.expand({b, -1, -1}), x}, 1) +
        v.pos_embed;
    for (size_t i = 0; i < v.block_list.size(); ++i) {
      x = v.block_list[i]->forward(x);
      if (i == 0) tap(taps, "block0", x.narrow(0, 0, 1));
    }
    x = v.norm->forward(x);
    tap(taps, "norm", x.narrow(0, 0, 1));
    torch::Tensor pooled = (x.select(1, 0) + x.select(1, 1)) / 2;
    torch::Tensor logits = net_->head->forward(net_->head_norm->forward(pooled));
    std::vector<AstOutput> out(batch);
    for (int64_t i = 0; i < b; ++i) out[i] = {tensor_values(pooled[i]), tensor_values(logits[i])};
    return out;
  }

  Ast net_;
  int threads_;
  torch::Device device_ = inference_device();
};

}  // namespace

std::unique_ptr<AstModel> AstModel::load(const std::string& path, int threads, int heads) {
  if (threads < 1) throw Error("AST: threads must be at least 1");
  if (heads < 0) throw Error("AST: heads must not be negative");
  return std::make_unique<AstPort>(path, threads, heads);
}

}  // namespace earmark
