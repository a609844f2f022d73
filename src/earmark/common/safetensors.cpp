#include "earmark/common/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "earmark/common/error.h"
#include "earmark/storage/atomic_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.cpp assumes a little-endian host"
#endif

namespace earmark {

namespace {

using Json = nlohmann::json;

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;  // +-0
    } else {        // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mantissa <<= 1;
      } while ((mantissa & 0x400u) == 0);
      bits = sign | (uint32_t(127 - 15 - e) << 23) | ((mantissa & 0x3ffu) << 13);
    }
  } else if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf / nan
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Non-negative JSON integer as uint64 (rejects floats, negatives, other types).
bool json_to_u64(const Json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    *out = static_cast<uint64_t>(i);
    return true;
  }
  return false;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},  {"BOOL", 1}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("not a regular file");
  }
  file_size_ = static_cast<size_t>(st.st_size);
  if (file_size_ < 8) {
    ::close(fd);
    fail("file of " + std::to_string(file_size_) +
         " bytes is too small for the 8-byte header length");
  }
  void* map = ::mmap(nullptr, file_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) fail(std::string("cannot mmap: ") + std::strerror(map_err));
  bytes_ = static_cast<const uint8_t*>(map);
  try {
    parse_header();
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(bytes_), file_size_);
    bytes_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (bytes_ != nullptr) ::munmap(const_cast<uint8_t*>(bytes_), file_size_);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      bytes_(std::exchange(other.bytes_, nullptr)),
      file_size_(std::exchange(other.file_size_, 0)),
      data_section_(std::exchange(other.data_section_, nullptr)),
      data_size_(std::exchange(other.data_size_, 0)),
      tensors_(std::move(other.tensors_)),
      index_(std::move(other.index_)),
      metadata_(std::move(other.metadata_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    if (bytes_ != nullptr) ::munmap(const_cast<uint8_t*>(bytes_), file_size_);
    path_ = std::move(other.path_);
    bytes_ = std::exchange(other.bytes_, nullptr);
    file_size_ = std::exchange(other.file_size_, 0);
    data_section_ = std::exchange(other.data_section_, nullptr);
    data_size_ = std::exchange(other.data_size_, 0);
    tensors_ = std::move(other.tensors_);
    index_ = std::move(other.index_);
    metadata_ = std::move(other.metadata_);
  }
  return *this;
}

void SafetensorsFile::fail(const std::string& what) const {
  throw Error("safetensors file '" + path_ + "': " + what);
}

void SafetensorsFile::parse_header() {
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes_[i];
  if (header_len > file_size_ - 8) {
    fail("header length " + std::to_string(header_len) + " exceeds the file size " +
         std::to_string(file_size_));
  }
  if (header_len < 2) fail("header of " + std::to_string(header_len) + " bytes is too short");
  data_section_ = bytes_ + 8 + header_len;
  data_size_ = file_size_ - 8 - header_len;

  const char* text = reinterpret_cast<const char*>(bytes_ + 8);
  Json header;
  try {
    header = Json::parse(text, text + header_len);
  } catch (const Json::exception& e) {
    fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail("header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const Json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("__metadata__ is not a JSON object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) fail("__metadata__ value '" + m.key() + "' is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!entry.is_object()) fail(where + "entry is not a JSON object");
    const auto dtype_it = entry.find("dtype");
    const auto shape_it = entry.find("shape");
    const auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string()) fail(where + "missing string 'dtype'");
    if (shape_it == entry.end() || !shape_it->is_array()) fail(where + "missing array 'shape'");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
      fail(where + "'data_offsets' must be an array [begin, end]");
    }

    TensorInfo t;
    t.name = name;
    t.dtype = dtype_it->get<std::string>();
    t.element_size = safetensors_dtype_size(t.dtype);
    if (t.element_size == 0) fail(where + "unsupported dtype '" + t.dtype + "'");

    uint64_t elements = 1;
    for (const Json& d : *shape_it) {
      uint64_t dim = 0;
      if (!json_to_u64(d, &dim) || dim > uint64_t(std::numeric_limits<int64_t>::max())) {
        fail(where + "shape entries must be non-negative integers");
      }
      if (dim != 0 && elements > std::numeric_limits<uint64_t>::max() / dim) {
        fail(where + "shape is too large");
      }
      elements *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    t.num_elements = elements;
    if (elements > std::numeric_limits<uint64_t>::max() / t.element_size) {
      fail(where + "shape is too large");
    }
    const uint64_t expected_bytes = elements * t.element_size;

    if (!json_to_u64((*offsets_it)[0], &t.data_begin) ||
        !json_to_u64((*offsets_it)[1], &t.data_end)) {
      fail(where + "data_offsets must be non-negative integers");
    }
    if (t.data_end < t.data_begin) {
      fail(where + "data_offsets [" + std::to_string(t.data_begin) + ", " +
           std::to_string(t.data_end) + "] end before they begin");
    }
    if (t.data_end > data_size_) {
      fail(where + "data_offsets [" + std::to_string(t.data_begin) + ", " +
           std::to_string(t.data_end) + "] lie beyond the data section of " +
           std::to_string(data_size_) + " bytes (file truncated?)");
    }
    if (t.data_end - t.data_begin != expected_bytes) {
      fail(where + "holds " + std::to_string(t.data_end - t.data_begin) + " bytes but dtype " +
           t.dtype + " with shape " + shape_string(t.shape) + " needs " +
           std::to_string(expected_bytes));
    }
    tensors_.push_back(std::move(t));
  }

  std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.data_begin != b.data_begin) return a.data_begin < b.data_begin;
    if (a.data_end != b.data_end) return a.data_end < b.data_end;
    return a.name < b.name;
  });
  for (size_t i = 1; i < tensors_.size(); ++i) {
    if (tensors_[i].data_begin < tensors_[i - 1].data_end) {
      fail("tensors '" + tensors_[i - 1].name + "' and '" + tensors_[i].name +
           "' overlap in the data section");
    }
  }
  index_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_) out.push_back(t.name);
  return out;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return index_.find(name) != index_.end();
}

const SafetensorsFile::TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) fail("no tensor named '" + name + "'");
  return tensors_[it->second];
}

const SafetensorsFile::TensorInfo& SafetensorsFile::checked_info(const std::string& name,
                                                                 const char* dtype) const {
  const TensorInfo& t = info(name);
  if (t.dtype != dtype) {
    fail("tensor '" + name + "' has dtype " + t.dtype + ", expected " + dtype);
  }
  return t;
}

const uint8_t* SafetensorsFile::data(const std::string& name) const {
  return data_section_ + info(name).data_begin;
}

std::vector<uint8_t> SafetensorsFile::raw(const std::string& name) const {
  const TensorInfo& t = info(name);
  const uint8_t* p = data_section_ + t.data_begin;
  return std::vector<uint8_t>(p, p + t.byte_size());
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name) const {
  const TensorInfo& t = checked_info(name, "F32");
  std::vector<float> out(t.num_elements);
  if (!out.empty()) std::memcpy(out.data(), data_section_ + t.data_begin, t.byte_size());
  return out;
}

std::vector<int64_t> SafetensorsFile::read_i64(const std::string& name) const {
  const TensorInfo& t = checked_info(name, "I64");
  std::vector<int64_t> out(t.num_elements);
  if (!out.empty()) std::memcpy(out.data(), data_section_ + t.data_begin, t.byte_size());
  return out;
}

std::vector<float> SafetensorsFile::read_as_f32(const std::string& name) const {
  const TensorInfo& t = info(name);
  const uint8_t* p = data_section_ + t.data_begin;
  std::vector<float> out(t.num_elements);
  if (t.dtype == "F32") {
    if (!out.empty()) std::memcpy(out.data(), p, t.byte_size());
  } else if (t.dtype == "F64") {
    for (size_t i = 0; i < out.size(); ++i) {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      out[i] = static_cast<float>(v);
    }
  } else if (t.dtype == "F16" || t.dtype == "BF16") {
    const bool bf16 = t.dtype == "BF16";
    for (size_t i = 0; i < out.size(); ++i) {
      const uint16_t h = uint16_t(p[2 * i]) | uint16_t(uint16_t(p[2 * i + 1]) << 8);
      if (bf16) {
        const uint32_t bits = uint32_t(h) << 16;
        std::memcpy(&out[i], &bits, 4);
      } else {
        out[i] = half_to_float(h);
      }
    }
  } else {
    fail("tensor '" + name + "' has dtype " + t.dtype + ", not a floating-point type");
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const SafetensorsTensor& t : tensors) {
    const size_t element = safetensors_dtype_size(t.dtype);
    if (t.name.empty() || t.name == "__metadata__" || header.contains(t.name))
      throw Error(path + ": bad or repeated tensor name '" + t.name + "'");
    if (element == 0) throw Error(path + ": tensor " + t.name + " has unknown dtype " + t.dtype);
    uint64_t count = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw Error(path + ": tensor " + t.name + " has a negative dimension");
      count *= uint64_t(d);
    }
    if (count * element != t.byte_size || (t.byte_size > 0 && t.data == nullptr))
      throw Error(path + ": tensor " + t.name + " has " + std::to_string(t.byte_size) +
                  " bytes, its shape needs " + std::to_string(count * element));
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.byte_size}}};
    offset += t.byte_size;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned (as the reference writer does).
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t length[8];
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) length[i] = uint8_t(n >> (8 * i));
  AtomicFileWriter out(path);
  out.write(length, 8);
  out.write(text.data(), text.size());
  for (const SafetensorsTensor& t : tensors)
    if (t.byte_size > 0) out.write(t.data, t.byte_size);
  out.commit();
}

}  // namespace earmark
