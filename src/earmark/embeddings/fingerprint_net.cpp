#include "earmark/embeddings/fingerprint_net.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "earmark/common/error.h"
#include "earmark/embeddings/fingerprint_net_module.h"

namespace earmark {

nlohmann::json FingerprintNetConfig::to_json() const {
  return {{"mel_bins", mel_bins},
          {"window_frames", window_frames},
          {"dim", dim},
          {"channels", channels}};
}

FingerprintNetConfig FingerprintNetConfig::from_json(const nlohmann::json& j) {
  FingerprintNetConfig c;
  try {
    c.mel_bins = j.at("mel_bins").get<int>();
    c.window_frames = j.at("window_frames").get<int>();
    c.dim = j.at("dim").get<int>();
    c.channels = j.at("channels").get<std::vector<int>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("fingerprint network config: ") + e.what());
  }
  c.validate();
  return c;
}

std::vector<int> FingerprintNetConfig::parse_channels(const std::string& text) {
  std::vector<int> out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    try {
      size_t used = 0;
      out.push_back(std::stoi(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error("--channels: not a list of integers: " + text);
    }
    at = comma + 1;
  }
  return out;
}

void FingerprintNetConfig::validate() const {
  if (channels.empty() || channels.size() > 8)
    throw Error("fingerprint network: 1 to 8 stages expected");
  for (int c : channels)
    if (c < 1 || c > 4096) throw Error("fingerprint network: stage channels must be in [1, 4096]");
  const int stride = 1 << channels.size();
  if (mel_bins < stride || mel_bins % stride || window_frames < stride || window_frames % stride)
    throw Error("fingerprint network: mel_bins and window_frames must be multiples of " +
                std::to_string(stride) + " (2 per stage)");
  if (mel_bins > 1024 || window_frames > 4096) throw Error("fingerprint network: window too large");
  if (dim < 2 || dim > 4096) throw Error("fingerprint network: dim must be in [2, 4096]");
}

int FingerprintNetConfig::final_bins() const { return mel_bins >> channels.size(); }
int FingerprintNetConfig::final_frames() const { return window_frames >> channels.size(); }

void normalise_fingerprint_window(const float* window, size_t values, float* out) {
  double sum = 0;
  for (size_t i = 0; i < values; ++i) sum += window[i];
  const float mean = values ? float(sum / values) : 0.0f;
  // Log-mel values of music spread over a few natural-log units; a quarter brings them near [-1,
  // 1].
  for (size_t i = 0; i < values; ++i) out[i] = (window[i] - mean) * 0.25f;
}

FingerprintNetImpl::FingerprintNetImpl(const FingerprintNetConfig& c) : config(c) {
  config.validate();
  stages = torch::nn::Sequential();
  int in = 1;
  for (int out : config.channels) {
    stages->push_back(
        torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(2).padding(1).bias(false)));
    stages->push_back(torch::nn::BatchNorm2d(out));
    stages->push_back(torch::nn::ReLU());
    in = out;
  }
  register_module("stages", stages);
  projection = register_module(
      "projection",
      torch::nn::Linear(in * config.final_frames() * config.final_bins(), config.dim));
}

torch::Tensor FingerprintNetImpl::forward(torch::Tensor x) {
  x = stages->forward(x.unsqueeze(1));
  x = projection->forward(x.flatten(1));
  return torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

std::vector<std::pair<std::string, torch::Tensor>> fingerprint_state(FingerprintNet& net) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : net->named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : net->named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

namespace {
const char* dtype_name(const torch::Tensor& t) {
  if (t.scalar_type() == torch::kFloat32) return "F32";
  if (t.scalar_type() == torch::kInt64) return "I64";
  throw Error("safetensors: only float32 and int64 tensors are written");
}
}  // namespace

void save_fingerprint_net(FingerprintNet& net, const std::string& path,
                          std::map<std::string, std::string> metadata,
                          const std::vector<std::pair<std::string, torch::Tensor>>& extra) {
  auto named = fingerprint_state(net);
  named.insert(named.end(), extra.begin(), extra.end());
  std::vector<torch::Tensor> keep;  // contiguous CPU copies outlive the write
  std::vector<SafetensorsTensor> tensors;
  for (const auto& [name, tensor] : named) {
    keep.push_back(tensor.detach().to(torch::kCPU).contiguous());
    const torch::Tensor& t = keep.back();
    tensors.push_back({name, dtype_name(t),
                       std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), t.data_ptr(),
                       size_t(t.numel()) * t.element_size()});
  }
  metadata["earmark_model"] = "fingerprint_net";
  metadata["config"] = net->config.to_json().dump();
  write_safetensors(path, tensors, metadata);
}

torch::Tensor read_tensor(const SafetensorsFile& file, const std::string& name) {
  const auto& info = file.info(name);
  if (info.dtype == "I64") {
    auto v = file.read_i64(name);
    return torch::from_blob(v.data(), info.shape, torch::kInt64).clone();
  }
  auto v = file.read_f32(name);
  return torch::from_blob(v.data(), info.shape, torch::kFloat32).clone();
}

void load_fingerprint_state(FingerprintNet& net, const SafetensorsFile& file) {
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : fingerprint_state(net)) {
    if (!file.contains(name)) throw Error(file.path() + ": weight " + name + " is missing");
    torch::Tensor value = read_tensor(file, name);
    if (value.sizes() != tensor.sizes() || value.scalar_type() != tensor.scalar_type())
      throw Error(file.path() + ": weight " + name + " has shape " + c10::str(value.sizes()) +
                  ", the network needs " + c10::str(tensor.sizes()));
    tensor.copy_(value);
  }
}

FingerprintNetConfig fingerprint_config_of(const SafetensorsFile& file) {
  const auto& meta = file.metadata();
  auto it = meta.find("config");
  if (meta.count("earmark_model") == 0 || meta.at("earmark_model") != "fingerprint_net" ||
      it == meta.end())
    throw Error(file.path() + ": not a fingerprint network weight file");
  nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
  if (j.is_discarded()) throw Error(file.path() + ": unreadable network config");
  try {
    return FingerprintNetConfig::from_json(j);
  } catch (const Error& e) {
    throw Error(file.path() + ": " + e.what());
  }
}

namespace {

class FingerprintEmbedder : public Embedder {
 public:
  FingerprintEmbedder(const std::string& path, int threads) : net_(nullptr) {
    SafetensorsFile file(path);
    net_ = FingerprintNet(fingerprint_config_of(file));
    load_fingerprint_state(net_, file);
    auto it = file.metadata().find("name");
    name_ = it != file.metadata().end() ? it->second : "fingerprint_net";
    start(threads);
  }
  FingerprintEmbedder(const FingerprintNetConfig& config, uint64_t seed, int threads)
      : net_(nullptr) {
    torch::manual_seed(seed);
    net_ = FingerprintNet(config);
    name_ = "fingerprint_net (untrained)";
    start(threads);
  }
  std::string name() const override { return name_; }
  int dim() const override { return net_->config.dim; }
  int window_frames() const override { return net_->config.window_frames; }
  int mel_bins() const override { return net_->config.mel_bins; }

  void embed(const float* windows, size_t count, float* out) override {
    if (count == 0) return;
    const size_t values = size_t(window_frames()) * mel_bins();
    input_.resize(count * values);
    for (size_t i = 0; i < count; ++i)
      normalise_fingerprint_window(windows + i * values, values, input_.data() + i * values);
    torch::InferenceMode guard;
    torch::Tensor x =
        torch::from_blob(input_.data(), {int64_t(count), window_frames(), mel_bins()});
    torch::Tensor y = net_->forward(x).contiguous();
    std::memcpy(out, y.data_ptr<float>(), count * dim() * sizeof(float));
  }

 private:
  void start(int threads) {
    net_->eval();
    if (threads > 0) torch::set_num_threads(threads);
  }

  FingerprintNet net_;
  std::string name_;
  std::vector<float> input_;
};

}  // namespace

std::unique_ptr<Embedder> load_fingerprint_net(const std::string& path, int threads) {
  try {
    return std::make_unique<FingerprintEmbedder>(path, threads);
  } catch (const c10::Error& e) {
    throw Error(path + ": " + e.what_without_backtrace());
  }
}

std::unique_ptr<Embedder> random_fingerprint_net(const FingerprintNetConfig& config, uint64_t seed,
                                                 int threads) {
  return std::make_unique<FingerprintEmbedder>(config, seed, threads);
}

std::string default_fingerprint_weights() {
  const std::string file = "fingerprint_net.safetensors";
  if (const char* env = std::getenv("EARMARK_MODEL_DIR"); env && *env)
    return std::string(env) + "/" + file;
#ifdef EARMARK_SOURCE_MODELS
  if (std::filesystem::exists(std::string(EARMARK_SOURCE_MODELS) + "/" + file))
    return std::string(EARMARK_SOURCE_MODELS) + "/" + file;
#endif
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) return (exe.parent_path().parent_path() / "models" / file).string();
  return "models/" + file;
}

}  // namespace earmark
