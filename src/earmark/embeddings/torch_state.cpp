#include "earmark/embeddings/torch_state.h"

#include <map>
#include <set>
#include <sstream>

#include "earmark/common/error.h"
#include "earmark/embeddings/fingerprint_net_module.h"

namespace earmark {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

const char* dtype_of(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32:
      return "F32";
    case torch::kInt64:
      return "I64";
    default:
      return "?";
  }
}

// At most a few names of a list, then how many more.
std::string some(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 6; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 6) out += ", ... (" + std::to_string(names.size() - 6) + " more)";
  return out;
}

}  // namespace

void load_state_strict(torch::nn::Module& module, const SafetensorsFile& file,
                       const StateKeys& keys, const std::string& model) {
  std::map<std::string, torch::Tensor> wanted;
  for (const auto& p : module.named_parameters(true)) wanted[p.key()] = p.value();
  for (const auto& b : module.named_buffers(true)) wanted[b.key()] = b.value();

  std::map<std::string, std::string> found;  // module name -> file key
  std::set<std::string> misfit;              // module names whose tensor is there but misfits
  std::vector<std::string> unexpected, mismatched, missing;
  for (const std::string& key : file.names()) {
    std::string name;
    bool ignored = false;
    for (const std::string& prefix : keys.prefixes) {
      if (key.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string rest = key.substr(prefix.size());
      if (wanted.count(rest)) {
        name = rest;
        break;
      }
      ignored |= keys.ignored.count(rest) > 0;
    }
    if (name.empty()) {
      if (!ignored) unexpected.push_back(key);
      continue;
    }
    const auto& info = file.info(key);
    const torch::Tensor& target = wanted.at(name);
    const std::vector<int64_t> need(target.sizes().begin(), target.sizes().end());
    if (info.shape != need || info.dtype != dtype_of(target)) {
      mismatched.push_back(key + " (file " + info.dtype + " " + shape_text(info.shape) +
                           ", model " + dtype_of(target) + " " + shape_text(need) + ")");
      misfit.insert(name);
      continue;
    }
    found[name] = key;
  }
  for (const auto& [name, tensor] : wanted)
    if (!found.count(name) && !misfit.count(name)) missing.push_back(name);
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string why = file.path() + ": not a checkpoint of " + model + " that fits";
    if (!missing.empty())
      why += "; missing " + std::to_string(missing.size()) + ": " + some(missing);
    if (!unexpected.empty())
      why += "; unexpected " + std::to_string(unexpected.size()) + ": " + some(unexpected);
    if (!mismatched.empty())
      why += "; mismatched " + std::to_string(mismatched.size()) + ": " + some(mismatched);
    throw Error(why);
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, key] : found) wanted.at(name).copy_(read_tensor(file, key));
}

std::vector<int64_t> required_shape(const SafetensorsFile& file, const std::string& key,
                                    const std::string& model) {
  if (!file.contains(key))
    throw Error(file.path() + ": not a checkpoint of " + model + " (no " + key + ")");
  return file.info(key).shape;
}

std::vector<float> tensor_values(const torch::Tensor& tensor) {
  torch::Tensor c = tensor.contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

void tap(ActivationTaps* taps, const std::string& name, const torch::Tensor& tensor) {
  if (!taps) return;
  taps->tensors[name] = {std::vector<int64_t>(tensor.sizes().begin(), tensor.sizes().end()),
                         tensor_values(tensor)};
}

}  // namespace earmark
