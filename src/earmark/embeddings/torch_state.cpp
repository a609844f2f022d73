#include "earmark/embeddings/torch_state.h"

#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <utility>

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

bool starts_with(const std::string& s, const std::string& head) {
  return s.compare(0, head.size(), head) == 0;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// At most a few names of a list, then how many more.
std::string some(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 6; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 6) out += ", ... (" + std::to_string(names.size() - 6) + " more)";
  return out;
}

}  // namespace

Checkpoint::Checkpoint(const std::string& path, StateKeys keys, std::string model)
    : file_(path), keys_(std::move(keys)), model_(std::move(model)) {
  // Pieces of split tensors, by original name: part -> file key.
  std::map<std::string, std::pair<int, std::map<int, std::string>>> pieces;
  for (const std::string& key : file_.names()) {
    std::string name = key;
    int part = 0, parts = 1;
    if (keys_.rename && !keys_.rename(key, name, part, parts)) name = key, part = 0, parts = 1;
    for (const std::string& prefix : keys_.prefixes)
      if (!prefix.empty() && starts_with(name, prefix)) {
        name = name.substr(prefix.size());
        break;
      }
    bool ignored = keys_.ignored.count(name) > 0;
    for (const std::string& family : keys_.ignored_prefixes) ignored |= starts_with(name, family);
    auto twice = [&](const std::string& other) {
      return Error(path + ": not a checkpoint of " + model_ + " that fits; " + key + " and " +
                   other + " are both " + name);
    };
    if (parts > 1) {
      if (part < 0 || part >= parts)
        throw Error(path + ": " + key + " is piece " + std::to_string(part + 1) + " of " +
                    std::to_string(parts));
      auto& split = pieces[name];
      split.first = parts;
      if (split.second.count(part)) throw twice(split.second.at(part));
      split.second[part] = key;
      continue;
    }
    if (tensors_.count(name)) throw twice(tensors_.at(name).keys.at(0));
    const auto& info = file_.info(key);
    tensors_[name] = {{key}, info.dtype, info.shape, ignored};
  }
  for (const auto& [name, split] : pieces) {
    const auto& [parts, keys_of] = split;
    if (tensors_.count(name))
      throw Error(path + ": not a checkpoint of " + model_ + " that fits; " + name +
                  " is both whole (" + tensors_.at(name).keys.at(0) + ") and in pieces");
    Tensor joined;
    for (int p = 0; p < parts; ++p) {
      auto it = keys_of.find(p);
      if (it == keys_of.end())
        throw Error(path + ": not a checkpoint of " + model_ + " that fits; " + name +
                    " lacks piece " + std::to_string(p + 1) + " of " + std::to_string(parts));
      const auto& info = file_.info(it->second);
      if (p == 0) {
        joined.dtype = info.dtype, joined.shape = info.shape;
      } else if (info.dtype != joined.dtype || info.shape.empty() || joined.shape.empty() ||
                 std::vector<int64_t>(info.shape.begin() + 1, info.shape.end()) !=
                     std::vector<int64_t>(joined.shape.begin() + 1, joined.shape.end())) {
        throw Error(path + ": the pieces of " + name + " do not join (" + joined.keys[0] + " " +
                    shape_text(joined.shape) + ", " + it->second + " " + info.dtype + " " +
                    shape_text(info.shape) + ")");
      } else {
        joined.shape[0] += info.shape[0];
      }
      joined.keys.push_back(it->second);
    }
    for (const std::string& family : keys_.ignored_prefixes)
      joined.ignored |= starts_with(name, family);
    joined.ignored |= keys_.ignored.count(name) > 0;
    tensors_[name] = std::move(joined);
  }
}

std::vector<int64_t> Checkpoint::shape(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw Error(path() + ": not a checkpoint of " + model_ + " (no " + name + ")");
  return it->second.shape;
}

torch::Tensor Checkpoint::read(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw Error(path() + ": not a checkpoint of " + model_ + " (no " + name + ")");
  std::vector<torch::Tensor> parts;
  for (const std::string& key : it->second.keys) parts.push_back(read_tensor(file_, key));
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
}

void Checkpoint::load_into(torch::nn::Module& module) const {
  std::map<std::string, torch::Tensor> wanted;
  for (const auto& p : module.named_parameters(true)) wanted[p.key()] = p.value();
  for (const auto& b : module.named_buffers(true)) wanted[b.key()] = b.value();

  std::vector<std::string> unexpected, mismatched, missing;
  std::set<std::string> present;  // module names the checkpoint holds, fitting or not
  for (const auto& [name, t] : tensors_) {
    if (t.ignored) continue;
    auto it = wanted.find(name);
    const std::string origin =
        t.keys.size() == 1 ? t.keys[0] : name + " (joined from " + some(t.keys) + ")";
    if (it == wanted.end()) {
      unexpected.push_back(origin);
      continue;
    }
    present.insert(name);
    const std::vector<int64_t> need(it->second.sizes().begin(), it->second.sizes().end());
    if (t.shape != need || t.dtype != dtype_of(it->second))
      mismatched.push_back(origin + " (file " + t.dtype + " " + shape_text(t.shape) + ", model " +
                           dtype_of(it->second) + " " + shape_text(need) + ")");
  }
  auto optional = [&](const std::string& name) {
    for (const std::string& tail : keys_.optional_suffixes)
      if (ends_with(name, tail)) return true;
    return false;
  };
  for (const auto& [name, tensor] : wanted)
    if (!present.count(name) && !optional(name)) missing.push_back(name);
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string why = path() + ": not a checkpoint of " + model_ + " that fits";
    if (!missing.empty())
      why += "; missing " + std::to_string(missing.size()) + ": " + some(missing);
    if (!unexpected.empty())
      why += "; unexpected " + std::to_string(unexpected.size()) + ": " + some(unexpected);
    if (!mismatched.empty())
      why += "; mismatched " + std::to_string(mismatched.size()) + ": " + some(mismatched);
    throw Error(why);
  }
  torch::NoGradGuard no_grad;
  for (const std::string& name : present) wanted.at(name).copy_(read(name));
}

std::string replace_first(const std::string& text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  if (at == std::string::npos) return text;
  return text.substr(0, at) + to + text.substr(at + from.size());
}

std::string hugging_face_block_name(const std::string& name, const std::string& self,
                                    const std::string& output, int& part, int& parts) {
  const char* const pieces[] = {"query.", "key.", "value."};
  for (int p = 0; p < 3; ++p) {
    const std::string from = self + pieces[p];
    if (name.find(from) != std::string::npos) {
      part = p, parts = 3;
      return replace_first(name, from, "attn.qkv.");
    }
  }
  if (name.find(self) != std::string::npos) return replace_first(name, self, "attn.");
  if (name.find(output) != std::string::npos) return replace_first(name, output, "attn.proj.");
  std::string out = replace_first(name, "layernorm_before.", "norm1.");
  out = replace_first(out, "layernorm_after.", "norm2.");
  out = replace_first(out, "intermediate.dense.", "mlp.fc1.");
  return replace_first(out, "output.dense.", "mlp.fc2.");
}

torch::Device inference_device() {
  const char* forced = std::getenv("EARMARK_DEVICE");
  if (forced && std::string(forced) == "cpu") return torch::kCPU;
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

std::vector<float> tensor_values(const torch::Tensor& tensor) {
  torch::Tensor c = tensor.to(torch::kCPU).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

void tap(ActivationTaps* taps, const std::string& name, const torch::Tensor& tensor) {
  if (!taps) return;
  taps->tensors[name] = {std::vector<int64_t>(tensor.sizes().begin(), tensor.sizes().end()),
                         tensor_values(tensor)};
}

}  // namespace earmark
