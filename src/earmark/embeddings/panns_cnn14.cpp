#include "earmark/embeddings/panns_cnn14.h"

#include <torch/torch.h>

#include <string>

#include "earmark/common/error.h"
#include "earmark/common/safetensors.h"
#include "earmark/embeddings/torch_state.h"

namespace earmark {
namespace {

namespace nn = torch::nn;

// Two 3x3 convolutions without bias, each followed by batch norm and ReLU, then average pooling.
struct ConvBlockImpl : nn::Module {
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  ConvBlockImpl(int64_t in, int64_t out) {
    auto conv = [](int64_t i, int64_t o) {
      return nn::Conv2dOptions(i, o, 3).stride(1).padding(1).bias(false);
    };
    conv1 = register_module("conv1", nn::Conv2d(conv(in, out)));
    conv2 = register_module("conv2", nn::Conv2d(conv(out, out)));
    bn1 = register_module("bn1", nn::BatchNorm2d(out));
    bn2 = register_module("bn2", nn::BatchNorm2d(out));
  }
  torch::Tensor forward(torch::Tensor x, int64_t pool) {
    x = torch::relu(bn1->forward(conv1->forward(x)));
    x = torch::relu(bn2->forward(conv2->forward(x)));
    return pool > 1 ? torch::avg_pool2d(x, {pool, pool}) : x;
  }
};
TORCH_MODULE(ConvBlock);

struct Cnn14Impl : nn::Module {
  nn::BatchNorm2d bn0{nullptr};
  std::vector<ConvBlock> blocks;
  nn::Linear fc1{nullptr}, fc_audioset{nullptr};
  Cnn14Impl(int64_t mel_bins, const std::vector<int64_t>& channels, int64_t classes) {
    bn0 = register_module("bn0", nn::BatchNorm2d(mel_bins));
    int64_t in = 1;
    for (size_t i = 0; i < channels.size(); ++i) {
      blocks.push_back(
          register_module("conv_block" + std::to_string(i + 1), ConvBlock(in, channels[i])));
      in = channels[i];
    }
    fc1 = register_module("fc1", nn::Linear(in, in));
    fc_audioset = register_module("fc_audioset", nn::Linear(in, classes));
  }
};
TORCH_MODULE(Cnn14);

constexpr const char* kModel = "PANNs CNN14";

class PannsCnn14Model : public PannsCnn14 {
 public:
  PannsCnn14Model(const std::string& path, int threads) : net_(nullptr), logmel_(nullptr) {
    StateKeys keys;
    keys.ignored = {"spectrogram_extractor.stft.conv_real.weight",
                    "spectrogram_extractor.stft.conv_imag.weight", "logmel_extractor.melW"};
    const Checkpoint checkpoint(path, keys, kModel);
    // The geometry the checkpoint holds: the mel filters give the front end, the convolutions
    // the widths.
    const std::vector<int64_t> mel_w = checkpoint.shape("logmel_extractor.melW");
    if (mel_w.size() != 2 || mel_w[1] != 64)
      throw Error(path + ": logmel_extractor.melW is not [bins x 64]");
    if (mel_w[0] == 513)
      front_end_ = SlaneyLogMelOptions::panns_cnn14_32k();
    else if (mel_w[0] == 257)
      front_end_ = SlaneyLogMelOptions::panns_cnn14_16k();
    else
      throw Error(path + ": logmel_extractor.melW has " + std::to_string(mel_w[0]) +
                  " FFT bins; CNN14 checkpoints have 513 (32 kHz) or 257 (16 kHz)");
    std::vector<int64_t> channels;
    for (int i = 1; i <= 6; ++i)
      channels.push_back(
          checkpoint.shape("conv_block" + std::to_string(i) + ".conv1.weight").at(0));
    const int64_t classes = checkpoint.shape("fc_audioset.weight").at(0);
    net_ = Cnn14(64, channels, classes);
    checkpoint.load_into(*net_);
    net_->eval();
    net_->to(device_);
    logmel_ = std::make_unique<SlaneyLogMel>(front_end_);
    // The checkpoint's own filters: the port then computes what the original computed.
    logmel_->set_mel_filters(tensor_values(checkpoint.read("logmel_extractor.melW")));
    threads_ = threads;
  }

  int embedding_dim() const override { return int(net_->fc1->options.out_features()); }
  int classes() const override { return int(net_->fc_audioset->options.out_features()); }
  const SlaneyLogMelOptions& front_end() const override { return front_end_; }

  Cnn14Output forward_logmel(const float* logmel, size_t frames, Cnn14Taps* taps) override {
    return run(logmel, 1, frames, taps).at(0);
  }

  std::vector<Cnn14Output> forward_logmel_batch(const float* logmels, size_t batch,
                                                size_t frames) override {
    return run(logmels, batch, frames, nullptr);
  }

  Cnn14Output forward(const float* samples, size_t count, Cnn14Taps* taps) override {
    const std::vector<float> logmel = logmel_->compute(samples, count);
    return forward_logmel(logmel.data(), logmel.size() / 64, taps);
  }

 private:
  std::vector<Cnn14Output> run(const float* logmel, size_t batch, size_t frames, Cnn14Taps* taps) {
    // Five poolings by 2 need 32 frames (0.32 s at 32 kHz) for one step of time at the end.
    if (frames < 32)
      throw Error("CNN14: " + std::to_string(frames) + " log-mel frames, at least 32 needed");
    if (batch == 0) return {};
    torch::set_num_threads(threads_);
    torch::InferenceMode guard;
    torch::Tensor x =
        torch::from_blob(const_cast<float*>(logmel), {int64_t(batch), 1, int64_t(frames), 64})
            .to(device_);
    // Batch norm over the mel bins: they are moved into the channel axis and back.
    x = net_->bn0->forward(x.transpose(1, 3)).transpose(1, 3);
    tap(taps, "bn0", x.narrow(0, 0, 1));
    for (size_t i = 0; i < net_->blocks.size(); ++i) {
      x = net_->blocks[i]->forward(x, i + 1 < net_->blocks.size() ? 2 : 1);
      if (i == 0) tap(taps, "conv_block1", x.narrow(0, 0, 1));
    }
    tap(taps, "conv_block6", x.narrow(0, 0, 1));
    x = x.mean(3);
    x = std::get<0>(x.max(2)) + x.mean(2);
    torch::Tensor embedding = torch::relu(net_->fc1->forward(x));
    torch::Tensor clipwise = torch::sigmoid(net_->fc_audioset->forward(embedding));
    std::vector<Cnn14Output> out(batch);
    for (size_t i = 0; i < batch; ++i)
      out[i] = {tensor_values(embedding[int64_t(i)]), tensor_values(clipwise[int64_t(i)])};
    return out;
  }

  Cnn14 net_;
  SlaneyLogMelOptions front_end_;
  std::unique_ptr<SlaneyLogMel> logmel_;
  int threads_ = 1;
  torch::Device device_ = inference_device();
};

}  // namespace

std::unique_ptr<PannsCnn14> PannsCnn14::load(const std::string& path, int threads) {
  if (threads < 1) throw Error("CNN14: threads must be at least 1");
  return std::make_unique<PannsCnn14Model>(path, threads);
}

}  // namespace earmark
