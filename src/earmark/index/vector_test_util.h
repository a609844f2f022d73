#pragma once
// Test helper: random unit vectors, as embeddings are.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace earmark::testutil {

// n vectors of dim components, row-major, each of norm 1; the same for the same seed.
inline std::vector<float> unit_vectors(size_t n, int dim, uint64_t seed) {
  std::mt19937 rng{uint32_t(seed)};
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(n * size_t(dim));
  for (size_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int k = 0; k < dim; ++k) norm += std::pow(x[i * dim + k] = d(rng), 2);
    for (int k = 0; k < dim; ++k) x[i * dim + k] /= float(std::sqrt(norm));
  }
  return x;
}

}  // namespace earmark::testutil
