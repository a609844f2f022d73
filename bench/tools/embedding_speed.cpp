// Embedding throughput of the fingerprint network on this machine: windows per second for a
// batch size, with the shipped weights or a freshly initialised network of a given shape.
//   embedding_speed [--weights FILE] [--channels 24,48,96,160,256] [--dim 128] [--threads 2]
//                   [--batch 64] [--seconds 5]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "earmark/common/cpu_setup.h"
#include "earmark/embeddings/fingerprint_net.h"

int main(int argc, char** argv) {
  using namespace earmark;
  configure_cpu_inference();
  std::string weights;
  FingerprintNetConfig config;
  int threads = 2, batch = 64;
  double seconds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--weights")
      weights = v;
    else if (k == "--dim")
      config.dim = std::stoi(v);
    else if (k == "--threads")
      threads = std::stoi(v);
    else if (k == "--batch")
      batch = std::stoi(v);
    else if (k == "--seconds")
      seconds = std::stod(v);
    else if (k == "--frames")
      config.window_frames = std::stoi(v);
    else if (k == "--channels") {
      config.channels.clear();
      std::stringstream ss(v);
      for (std::string c; std::getline(ss, c, ',');) config.channels.push_back(std::stoi(c));
    }
  }
  try {
    auto net = weights.empty() ? random_fingerprint_net(config, 1, threads)
                               : load_fingerprint_net(weights, threads);
    const size_t values = size_t(net->window_frames()) * net->mel_bins();
    std::vector<float> in(values * batch), out(size_t(net->dim()) * batch);
    std::mt19937 rng(1);
    std::normal_distribution<float> noise(-4.0f, 3.0f);
    for (float& x : in) x = noise(rng);
    net->embed(in.data(), batch, out.data());  // warm-up
    size_t windows = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
      net->embed(in.data(), batch, out.data());
      windows += batch;
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::printf("%s threads=%d batch=%d: %.0f windows/s\n", net->name().c_str(), threads, batch,
                windows / elapsed);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "embedding_speed: %s\n", e.what());
    return 1;
  }
  return 0;
}
