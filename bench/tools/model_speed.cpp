// Speed and memory of a published model (AST, CLAP, PANNs CNN14) at full size on this machine,
// through the clip interface the index and scan use: ms per window and x realtime at its windows
// and hop, and the peak resident memory of the process.
//   model_speed --kind ast|clap|panns [--weights FILE] [--init formula|trained-like]
//               [--threads 2] [--batch 4] [--window 4] [--hop 2] [--seconds 60]
//               [--flush-denormal 0|1] [--write-checkpoint FILE]
// Without --weights, a full-size checkpoint is written from the real checkpoint's key manifest
// (../shared/fixtures/manifests): with the fixtures' formula weights, or with weights drawn like a
// trained network's (N(0, 0.02) matrices, unit norms, zero biases), whose activations stay in
// the range real ones have. Results go to stdout as one JSON line; progress to stderr.
#include <sys/resource.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "earmark/common/cpu_setup.h"
#include "earmark/common/error.h"
#include "earmark/common/fixtures_test_util.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/embeddings/clip_model.h"
#include "earmark/features/slaney_logmel.h"

namespace {

using namespace earmark;

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;
}

// Values like a trained network's for a tensor the formula would set.
std::vector<float> trained_like(const std::string& key, const std::vector<int64_t>& shape,
                                std::mt19937& rng) {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  const std::string last = key.substr(key.rfind('.') + 1);
  std::vector<float> v(n, 0.0f);
  if (last == "running_var" || (last == "weight" && shape.size() == 1)) {
    std::fill(v.begin(), v.end(), 1.0f);
  } else if (shape.size() >= 2 || last == "cls_token" || last == "dist_token" ||
             last == "pos_embed" || last == "relative_position_bias_table") {
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (float& x : v) x = normal(rng);
  }
  return v;
}

std::string manifest_of(const std::string& kind) {
  const std::string dir = testutil::kFixtures + "/manifests/";
  if (kind == "ast") return dir + "ast_base384_10_10.manifest.json";
  if (kind == "clap") return dir + "laion_clap_htsat_tiny.manifest.json";
  return dir + "panns_cnn14_32k.manifest.json";
}

}  // namespace

int main(int argc, char** argv) {
  configure_cpu_inference();
  std::string kind = "panns", weights, init = "trained-like";
  int threads = 2, batch = 4;
  double seconds = 60, window_s = 4, hop_s = 2;
  bool flush_denormal = false;
  std::string write_to;  // only write the full-size checkpoint there (for CLI runs) and stop
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--kind")
      kind = v;
    else if (k == "--weights")
      weights = v;
    else if (k == "--init")
      init = v;
    else if (k == "--threads")
      threads = std::stoi(v);
    else if (k == "--batch")
      batch = std::stoi(v);
    else if (k == "--window")
      window_s = std::stod(v);
    else if (k == "--hop")
      hop_s = std::stod(v);
    else if (k == "--seconds")
      seconds = std::stod(v);
    else if (k == "--write-checkpoint")
      write_to = v;
    else if (k == "--flush-denormal")
      flush_denormal = v == "1";
    else {
      std::fprintf(stderr, "model_speed: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  try {
    if (flush_denormal) at::globalContext().setFlushDenormal(true);
    testutil::TempDir temp;
    if (weights.empty()) {
      weights = temp.path() + "/" + kind + ".safetensors";
      std::fprintf(stderr, "model_speed: writing a full-size %s checkpoint (%s)\n", kind.c_str(),
                   init.c_str());
      std::mt19937 rng(7);
      testutil::write_formula_checkpoint(
          manifest_of(kind), weights,
          [&](const std::string& key, const std::vector<int64_t>& shape) {
            if (key.find("melW") != std::string::npos)
              return slaney_mel_filters(kind == "clap" ? SlaneyLogMelOptions::clap_htsat_48k()
                                                       : SlaneyLogMelOptions::panns_cnn14_32k());
            return std::vector<float>{};
          },
          init == "formula"
              ? nullptr
              : std::function<std::vector<float>(const std::string&, const std::vector<int64_t>&)>(
                    [&](const std::string& key, const std::vector<int64_t>& shape) {
                      return trained_like(key, shape, rng);
                    }));
    }
    if (!write_to.empty()) {
      std::filesystem::copy_file(weights, write_to,
                                 std::filesystem::copy_options::overwrite_existing);
      std::fprintf(stderr, "model_speed: wrote %s\n", write_to.c_str());
      return 0;
    }
    const auto t_load = std::chrono::steady_clock::now();
    auto model = ClipModel::load(kind, weights, threads);
    const double load_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
    ClipWindows{window_s, hop_s}.validate(double(model->max_clip_samples()) / model->sample_rate());
    const size_t length = size_t(std::lround(window_s * model->sample_rate()));
    std::vector<float> clips(length * size_t(batch));
    std::mt19937 rng(1);
    std::normal_distribution<float> noise(0.0f, 0.1f);
    for (float& x : clips) x = noise(rng);
    std::vector<float> out(size_t(model->dim()) * size_t(batch));
    std::fprintf(stderr, "model_speed: %s loaded in %.1f s; warming up\n", kind.c_str(), load_s);
    model->embed(clips.data(), size_t(batch), length, out.data());
    size_t done = 0;
    std::vector<double> per_batch;
    const auto t0 = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < seconds || done == 0) {
      const auto t = std::chrono::steady_clock::now();
      model->embed(clips.data(), size_t(batch), length, out.data());
      const auto now = std::chrono::steady_clock::now();
      per_batch.push_back(std::chrono::duration<double>(now - t).count());
      done += size_t(batch);
      elapsed = std::chrono::duration<double>(now - t0).count();
      std::fprintf(stderr, "model_speed: %zu windows, %.1f s\n", done, elapsed);
    }
    const double ms_per_window = 1000.0 * elapsed / double(done);
    // One window per hop of audio: the audio a second of compute covers.
    const double realtime = hop_s / (ms_per_window / 1000.0);
    std::printf(
        "{\"kind\":\"%s\",\"init\":\"%s\",\"dim\":%d,\"rate\":%d,\"threads\":%d,\"batch\":%d,"
        "\"window_s\":%.2f,\"hop_s\":%.2f,\"windows\":%zu,\"ms_per_window\":%.1f,"
        "\"x_realtime\":%.3f,\"load_s\":%.2f,\"peak_rss_mb\":%.0f,\"flush_denormal\":%d}\n",
        kind.c_str(), init.c_str(), model->dim(), model->sample_rate(), threads, batch, window_s,
        hop_s, done, ms_per_window, realtime, load_s, peak_rss_mb(), int(flush_denormal));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_speed: %s\n", e.what());
    return 1;
  }
  return 0;
}
