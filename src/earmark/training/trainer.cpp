#include "earmark/training/trainer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <numeric>
#include <random>

#include "earmark/common/error.h"
#include "earmark/embeddings/fingerprint_net_module.h"

namespace earmark {

void TrainOptions::validate() const {
  net.validate();
  if (out_dir.empty()) throw Error("training: an output folder is needed");
  if (val_pairs < 2 || val_pairs > 100'000)
    throw Error("training: val_pairs must be in [2, 100000]");
  if (!(val_share > 0 && val_share < 0.5)) throw Error("training: val_share must be in (0, 0.5)");
  if (batch_pairs < 2 || batch_pairs > 8192) throw Error("training: batch_pairs in [2, 8192]");
  if (steps < 1 || steps > 10'000'000) throw Error("training: steps in [1, 10 M]");
  if (warmup_steps < 0) throw Error("training: warmup_steps must not be negative");
  if (!(learning_rate > 0 && learning_rate < 1)) throw Error("training: learning_rate in (0, 1)");
  if (!(weight_decay >= 0 && weight_decay < 1)) throw Error("training: weight_decay in [0, 1)");
  if (!(temperature > 0.001 && temperature <= 10))
    throw Error("training: temperature in (0.001, 10]");
  if (threads < 1 || threads > 256) throw Error("training: threads in [1, 256]");
  if (checkpoint_every < 1 || validate_every < 1)
    throw Error("training: checkpoint_every and validate_every must be positive");
  if (stop_after_steps < 0 || !(max_minutes >= 0))
    throw Error("training: stop_after_steps and max_minutes must not be negative");
  if (device != "cpu" && device != "cuda") throw Error("training: device must be cpu or cuda");
}

namespace {

// Fills x [n, frames, bins] with normalised anchors (or positives) of the given pairs.
void load_batch(const PairCache& cache, const std::vector<size_t>& ids, bool positives, float* x) {
  const size_t values = cache.shape().values();
  std::vector<float> raw(values);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (positives)
      cache.positive(ids[i], raw.data());
    else
      cache.anchor(ids[i], raw.data());
    normalise_fingerprint_window(raw.data(), values, x + i * values);
  }
}

// NT-Xent: each of the 2B windows must pick its partner among the other 2B-1.
torch::Tensor nt_xent(const torch::Tensor& za, const torch::Tensor& zp, double temperature) {
  const int64_t b = za.size(0);
  torch::Tensor z = torch::cat({za, zp}, 0);
  torch::Tensor sim = torch::matmul(z, z.t()) / temperature;
  sim = sim - 1e9 * torch::eye(2 * b, sim.options());
  torch::Tensor target =
      torch::cat({torch::arange(b, 2 * b), torch::arange(0, b)}).to(sim.device());
  return torch::nn::functional::cross_entropy(sim, target);
}

// AdamW written out, so that its moments are plain named tensors in the checkpoint.
struct AdamW {
  std::vector<std::pair<std::string, torch::Tensor>> params;
  std::vector<torch::Tensor> m, v;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;

  explicit AdamW(FingerprintNet& net) {
    for (const auto& p : net->named_parameters()) {
      params.emplace_back(p.key(), p.value());
      m.push_back(torch::zeros_like(p.value()));
      v.push_back(torch::zeros_like(p.value()));
    }
  }
  void step(int t, double lr, double weight_decay) {
    torch::NoGradGuard no_grad;
    const double c1 = 1 - std::pow(beta1, t), c2 = 1 - std::pow(beta2, t);
    for (size_t i = 0; i < params.size(); ++i) {
      torch::Tensor& p = params[i].second;
      if (!p.grad().defined()) continue;
      const torch::Tensor g = p.grad();
      m[i].mul_(beta1).add_(g, 1 - beta1);
      v[i].mul_(beta2).addcmul_(g, g, 1 - beta2);
      // Decay only weights of convolutions and the projection, not batch-norm scales or biases.
      if (weight_decay > 0 && p.dim() > 1) p.mul_(1 - lr * weight_decay);
      p.addcdiv_(m[i] / c1, (v[i] / c2).sqrt_().add_(eps), -lr);
      p.grad().zero_();
    }
  }
  std::vector<std::pair<std::string, torch::Tensor>> state() const {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (size_t i = 0; i < params.size(); ++i) {
      out.emplace_back("adamw.m." + params[i].first, m[i]);
      out.emplace_back("adamw.v." + params[i].first, v[i]);
    }
    return out;
  }
  void load(const SafetensorsFile& file, torch::Device device) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      m[i].copy_(read_tensor(file, "adamw.m." + params[i].first).to(device));
      v[i].copy_(read_tensor(file, "adamw.v." + params[i].first).to(device));
    }
  }
};

double learning_rate_at(const TrainOptions& o, int step) {
  if (step < o.warmup_steps) return o.learning_rate * (step + 1) / o.warmup_steps;
  const double progress = double(step - o.warmup_steps) / std::max(1, o.steps - o.warmup_steps);
  return o.learning_rate *
         (0.05 + 0.95 * 0.5 * (1 + std::cos(3.14159265358979 * std::min(1.0, progress))));
}

// Embeds normalised windows in eval mode, in chunks.
torch::Tensor embed_all(FingerprintNet& net, const PairCache& cache, bool positives,
                        torch::Device device) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  const size_t values = cache.shape().values();
  for (size_t begin = 0; begin < cache.size(); begin += 256) {
    std::vector<size_t> ids;
    for (size_t i = begin; i < std::min(cache.size(), begin + 256); ++i) ids.push_back(i);
    std::vector<float> x(ids.size() * values);
    load_batch(cache, ids, positives, x.data());
    torch::Tensor t = torch::from_blob(x.data(), {int64_t(ids.size()), cache.shape().window_frames,
                                                  cache.shape().mel_bins})
                          .to(device);
    out.push_back(net->forward(t).to(torch::kCPU));
  }
  return torch::cat(out, 0);
}

double top1_of(const torch::Tensor& anchors, const torch::Tensor& positives) {
  torch::Tensor best = torch::matmul(positives, anchors.t()).argmax(1);
  torch::Tensor right = best.eq(torch::arange(positives.size(0)));
  return right.to(torch::kFloat64).mean().item<double>();
}

}  // namespace

void create_training_folder(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw Error("training: cannot create " + dir + ": " + ec.message());
}

TrainReport train_on_pairs(const PairCache& train, const PairCache& val,
                           const TrainOptions& options) {
  options.validate();
  const PairShape shape{options.net.window_frames, options.net.mel_bins};
  for (const PairCache* c : {&train, &val})
    if (c->shape().window_frames != shape.window_frames || c->shape().mel_bins != shape.mel_bins)
      throw Error("training: the pairs are " + std::to_string(c->shape().window_frames) + " x " +
                  std::to_string(c->shape().mel_bins) + " windows; the network takes " +
                  std::to_string(shape.window_frames) + " x " + std::to_string(shape.mel_bins));
  if (train.size() < size_t(2 * options.batch_pairs) || val.size() < 2)
    throw Error("training: need at least two batches of training pairs and two validation pairs");
  create_training_folder(options.out_dir);
  torch::Device device(options.device == "cuda" ? torch::kCUDA : torch::kCPU);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw Error("training: no CUDA device (this libtorch is CPU-only or no GPU is present)");
  torch::set_num_threads(options.threads);

  torch::manual_seed(options.seed);
  FingerprintNet net(options.net);
  net->to(device);
  AdamW adam(net);
  int step = 0;
  const std::string checkpoint = options.out_dir + "/checkpoint.safetensors";
  if (std::filesystem::exists(checkpoint)) {
    SafetensorsFile file(checkpoint);
    if (fingerprint_config_of(file).to_json() != options.net.to_json())
      throw Error(checkpoint + " is of another network shape; remove it or use another folder");
    load_fingerprint_state(net, file);
    adam.load(file, device);
    step = std::stoi(file.metadata().at("step"));
    spdlog::info("training: resuming at step {} from {}", step, checkpoint);
  }
  auto save = [&](const std::string& path, bool with_optimiser, double val_top1) {
    std::map<std::string, std::string> meta{{"step", std::to_string(step)},
                                            {"name", options.name},
                                            {"seed", std::to_string(options.seed)},
                                            {"train_pairs", std::to_string(train.size())},
                                            {"batch_pairs", std::to_string(options.batch_pairs)},
                                            {"temperature", std::to_string(options.temperature)},
                                            {"val_top1", std::to_string(val_top1)}};
    net->to(torch::kCPU);
    save_fingerprint_net(net, path, meta, with_optimiser ? adam.state() : decltype(adam.state()){});
    net->to(device);
  };

  const size_t values = shape.values();
  const size_t per_epoch = train.size() / options.batch_pairs;
  std::vector<size_t> order(train.size());
  int order_epoch = -1;
  std::deque<double> recent;
  double first_sum = 0;
  double val_top1 = 0;
  auto t0 = std::chrono::steady_clock::now();
  int steps_here = 0;
  std::vector<float> xa(options.batch_pairs * values), xp(options.batch_pairs * values);
  auto bounded = [&]() {
    const double minutes =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60;
    return (options.stop_after_steps > 0 && steps_here >= options.stop_after_steps) ||
           (options.max_minutes > 0 && minutes >= options.max_minutes);
  };
  while (step < options.steps && !bounded()) {
    // A seeded shuffle per epoch, so a resumed run sees the same batches.
    const int epoch = int(step / per_epoch);
    if (epoch != order_epoch) {
      std::iota(order.begin(), order.end(), 0);
      std::mt19937_64 rng(options.seed * 7919 + epoch);
      std::shuffle(order.begin(), order.end(), rng);
      order_epoch = epoch;
    }
    const size_t first = (step % per_epoch) * options.batch_pairs;
    std::vector<size_t> ids(order.begin() + first, order.begin() + first + options.batch_pairs);
    load_batch(train, ids, false, xa.data());
    load_batch(train, ids, true, xp.data());
    const std::vector<int64_t> dims{options.batch_pairs, shape.window_frames, shape.mel_bins};
    net->train();
    torch::Tensor a = torch::from_blob(xa.data(), dims).to(device);
    torch::Tensor p = torch::from_blob(xp.data(), dims).to(device);
    // One forward pass over both halves: batch norm sees the clean and degraded windows together,
    // as it will at inference time.
    torch::Tensor z = net->forward(torch::cat({a, p}, 0));
    torch::Tensor loss =
        nt_xent(z.narrow(0, 0, options.batch_pairs),
                z.narrow(0, options.batch_pairs, options.batch_pairs), options.temperature);
    loss.backward();
    adam.step(step + 1, learning_rate_at(options, step), options.weight_decay);
    ++step;
    ++steps_here;
    recent.push_back(loss.item<double>());
    if (steps_here <= 10) first_sum += recent.back();
    if (recent.size() > 50) recent.pop_front();
    const double mean_loss = std::accumulate(recent.begin(), recent.end(), 0.0) / recent.size();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (step % 20 == 0 || step == options.steps)
      spdlog::info("step {}/{}  loss {:.4f}  lr {:.2e}  {:.0f} pairs/s", step, options.steps,
                   mean_loss, learning_rate_at(options, step - 1),
                   steps_here * options.batch_pairs / std::max(seconds, 1e-9));
    if (step % options.validate_every == 0 || step == options.steps) {
      net->eval();
      val_top1 = top1_of(embed_all(net, val, false, device), embed_all(net, val, true, device));
      spdlog::info("step {}: validation top-1 {:.1f} % ({} held-out pairs)", step, 100 * val_top1,
                   val.size());
    }
    if (step % options.checkpoint_every == 0 || step == options.steps || bounded())
      save(checkpoint, true, val_top1);
  }
  if (steps_here == 0) {
    net->eval();
    val_top1 = top1_of(embed_all(net, val, false, device), embed_all(net, val, true, device));
  }
  TrainReport report;
  report.steps = step;
  report.first_loss = first_sum / std::max(1, std::min(10, steps_here));
  report.loss =
      recent.empty() ? 0 : std::accumulate(recent.begin(), recent.end(), 0.0) / recent.size();
  report.val_top1 = val_top1;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report.pairs_per_second = steps_here * options.batch_pairs / std::max(seconds, 1e-9);
  report.weights = options.out_dir + "/fingerprint_net.safetensors";
  save(report.weights, false, val_top1);
  spdlog::info("training: {} steps, validation top-1 {:.1f} %, weights in {}", step, 100 * val_top1,
               report.weights);
  return report;
}

}  // namespace earmark
