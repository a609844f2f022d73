#pragma once
// Intermediate activations of a ported model, for checking the port layer by layer against the
// original's: name -> (shape, values row-major). Free of libtorch.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace earmark {

struct ActivationTaps {
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> tensors;
};

}  // namespace earmark
