#pragma once
// The parity fixtures of ../shared/fixtures (outputs of the original AST, PANNs and CLAP code)
// for the tests that check our ports against them. Header-only, test code only.
#include <fstream>
#include <string>
#include <vector>

#include "earmark/common/error.h"

namespace earmark {
namespace testutil {

inline const std::string kFixtures = EARMARK_SOURCE_DIR "/../shared/fixtures";

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

}  // namespace testutil
}  // namespace earmark
