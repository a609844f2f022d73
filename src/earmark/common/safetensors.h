#pragma once
// Read-only safetensors reader: 8-byte little-endian header length, JSON header
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the
// raw little-endian, C-contiguous tensor bytes (offsets relative to the end of the header).
// The file is memory-mapped and validated strictly when opened; every problem throws
// earmark::Error naming the file.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace earmark {

// Bytes per element of a safetensors dtype name ("F32", "F16", "BF16", "F64", "I64", "I32",
// "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"); 0 if the name is not recognised.
size_t safetensors_dtype_size(const std::string& dtype);

class SafetensorsFile {
 public:
  struct TensorInfo {
    std::string name;
    std::string dtype;           // as in the header, e.g. "F32"
    std::vector<int64_t> shape;  // empty for a 0-dim scalar
    size_t element_size = 0;     // bytes per element
    uint64_t num_elements = 0;   // product(shape); 1 for a scalar
    uint64_t data_begin = 0;     // byte offsets relative to the start of the data section
    uint64_t data_end = 0;
    uint64_t byte_size() const { return data_end - data_begin; }
  };

  // Opens, maps and validates `path`. Throws earmark::Error if the file is missing, unreadable,
  // truncated or malformed.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;

  const std::string& path() const { return path_; }
  size_t size() const { return tensors_.size(); }

  // Tensor names in the order of their data in the file (for files written from a state_dict,
  // the state_dict order).
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  // Throws earmark::Error if there is no such tensor.
  const TensorInfo& info(const std::string& name) const;

  // Copy of an F32 tensor (throws earmark::Error for any other dtype).
  std::vector<float> read_f32(const std::string& name) const;
  // Copy of an I64 tensor (throws earmark::Error for any other dtype).
  std::vector<int64_t> read_i64(const std::string& name) const;
  // F32, F64, F16 or BF16 tensor converted to float (throws for integer dtypes).
  std::vector<float> read_as_f32(const std::string& name) const;
  // The tensor's bytes as stored.
  std::vector<uint8_t> raw(const std::string& name) const;
  // Pointer to the tensor's bytes inside the mapping (valid while this object lives; not
  // necessarily aligned for the element type).
  const uint8_t* data(const std::string& name) const;

  // The "__metadata__" strings (empty if the header has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  void parse_header();
  const TensorInfo& checked_info(const std::string& name, const char* dtype) const;
  [[noreturn]] void fail(const std::string& what) const;

  std::string path_;
  const uint8_t* bytes_ = nullptr;  // whole file (mapped)
  size_t file_size_ = 0;
  const uint8_t* data_section_ = nullptr;
  uint64_t data_size_ = 0;
  std::vector<TensorInfo> tensors_;  // sorted by data_begin
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: its bytes are copied as they are (little-endian, C-contiguous).
struct SafetensorsTensor {
  std::string name;
  std::string dtype;  // e.g. "F32"
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t byte_size = 0;  // must equal product(shape) * safetensors_dtype_size(dtype)
};

// Writes a safetensors file atomically (the previous file stays intact until the new one is
// complete). Tensors are stored in the order given. Throws earmark::Error on a bad name, dtype or
// size, and on any write failure.
void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace earmark
