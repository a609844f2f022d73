#include "earmark/common/safetensors.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "earmark/common/error.h"

namespace earmark {
namespace {

namespace fs = std::filesystem;

const std::string kFixtures = EARMARK_SOURCE_DIR "/../shared/fixtures";

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "earmark_safetensors_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((v >> (8 * i)) & 0xff);
  return s;
}

// Header (padded with spaces to a multiple of 8) + data.
std::string make_file(std::string header, const std::string& data) {
  while (header.size() % 8 != 0) header += ' ';
  return le64(header.size()) + header + data;
}

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// Expects earmark::Error whose message names the file.
void expect_error(const std::string& path, const std::string& fragment = "") {
  try {
    SafetensorsFile f(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    if (!fragment.empty()) {
      EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type for " << path << ": " << e.what();
  }
}

TEST(Safetensors, ReadsSyntheticFile) {
  TempDir dir;
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 1e-8f, 7.0f};
  const std::vector<int64_t> n = {42};
  const std::vector<uint16_t> h = {0x3c00, 0xc000, 0x0001, 0x7c00};  // F16 1, -2, 2^-24, inf
  const std::vector<uint16_t> bf = {0x3f80, 0x4049};                 // BF16 1, 3.140625
  const std::vector<uint8_t> u = {1, 2, 3};
  std::string data = bytes_of(a) + bytes_of(n) + bytes_of(h) + bytes_of(bf) + bytes_of(u);
  const std::string header = R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                             R"("n":{"dtype":"I64","shape":[],"data_offsets":[24,32]},)"
                             R"("h":{"dtype":"F16","shape":[4],"data_offsets":[32,40]},)"
                             R"("bf":{"dtype":"BF16","shape":[1,2],"data_offsets":[40,44]},)"
                             R"("empty":{"dtype":"F32","shape":[0,5],"data_offsets":[44,44]},)"
                             R"("u":{"dtype":"U8","shape":[3],"data_offsets":[44,47]},)"
                             R"("__metadata__":{"format":"pt","note":"hi"}})";
  const std::string path = dir.file("good.safetensors");
  write_bytes(path, make_file(header, data));

  SafetensorsFile f(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.size(), 6u);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "n", "h", "bf", "empty", "u"}));
  EXPECT_TRUE(f.contains("a"));
  EXPECT_FALSE(f.contains("__metadata__"));
  EXPECT_EQ(f.info("a").dtype, "F32");
  EXPECT_EQ(f.info("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.info("a").num_elements, 6u);
  EXPECT_EQ(f.info("a").byte_size(), 24u);
  EXPECT_EQ(f.info("n").shape.size(), 0u);
  EXPECT_EQ(f.info("n").num_elements, 1u);
  EXPECT_EQ(f.read_f32("a"), a);
  EXPECT_EQ(f.read_as_f32("a"), a);
  EXPECT_EQ(f.read_i64("n"), n);
  EXPECT_TRUE(f.read_f32("empty").empty());
  EXPECT_EQ(f.raw("u"), u);
  EXPECT_EQ(f.data("u")[2], 3);
  const auto hf = f.read_as_f32("h");
  EXPECT_EQ(hf[0], 1.0f);
  EXPECT_EQ(hf[1], -2.0f);
  EXPECT_EQ(hf[2], std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(hf[3]));
  EXPECT_EQ(f.read_as_f32("bf"), (std::vector<float>{1.0f, 3.140625f}));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "hi");

  EXPECT_THROW(f.read_f32("n"), Error);  // wrong dtype
  EXPECT_THROW(f.read_i64("a"), Error);  // wrong dtype
  EXPECT_THROW(f.read_as_f32("u"), Error);
  EXPECT_THROW(f.info("missing"), Error);
  EXPECT_THROW(f.read_f32("missing"), Error);

  SafetensorsFile moved(std::move(f));
  EXPECT_EQ(moved.read_f32("a"), a);
  EXPECT_EQ(safetensors_dtype_size("BF16"), 2u);
  EXPECT_EQ(safetensors_dtype_size("I64"), 8u);
  EXPECT_EQ(safetensors_dtype_size("Q4"), 0u);
}

TEST(Safetensors, WriterRoundTrips) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  const std::vector<float> a = {1.0f, -2.5f, 3.0f, 4.0f, 5.0f, 6.0f};
  const std::vector<int64_t> step = {1234};
  write_safetensors(path,
                    {{"net.weight", "F32", {2, 3}, a.data(), a.size() * 4},
                     {"step", "I64", {}, step.data(), 8},
                     {"none", "F32", {0}, nullptr, 0}},
                    {{"model", "test"}});
  SafetensorsFile f(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"net.weight", "step", "none"}));
  EXPECT_EQ(f.read_f32("net.weight"), a);
  EXPECT_EQ(f.info("net.weight").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.read_i64("step"), step);
  EXPECT_EQ(f.metadata().at("model"), "test");

  // A bad tensor is refused before anything is written: the previous file stays intact.
  EXPECT_THROW(write_safetensors(path, {{"x", "F32", {3}, a.data(), 8}}), Error);
  EXPECT_THROW(write_safetensors(path, {{"x", "Q4", {1}, a.data(), 1}}), Error);
  EXPECT_THROW(
      write_safetensors(path, {{"x", "F32", {1}, a.data(), 4}, {"x", "F32", {1}, a.data(), 4}}),
      Error);
  EXPECT_EQ(SafetensorsFile(path).read_f32("net.weight"), a);
  EXPECT_THROW(write_safetensors(dir.file("no/such/dir/w.safetensors"), {}), Error);
}

TEST(Safetensors, EmptyHeaderObject) {
  TempDir dir;
  const std::string path = dir.file("empty.safetensors");
  write_bytes(path, make_file("{}", ""));
  SafetensorsFile f(path);
  EXPECT_EQ(f.size(), 0u);
  EXPECT_TRUE(f.names().empty());
  EXPECT_TRUE(f.metadata().empty());
}

TEST(Safetensors, RejectsBadFiles) {
  TempDir dir;
  const std::string ok_header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string ok_data(8, '\0');
  auto case_file = [&](const std::string& name, const std::string& bytes) {
    const std::string path = dir.file(name);
    write_bytes(path, bytes);
    return path;
  };

  expect_error(dir.file("does_not_exist.safetensors"), "cannot open");
  expect_error(dir.file(""), "");  // the directory itself
  expect_error(case_file("empty.safetensors", ""), "too small");
  expect_error(case_file("short.safetensors", std::string("\x10\x00\x00", 3)), "too small");

  // Header length larger than the file.
  std::string full = make_file(ok_header, ok_data);
  std::string big = le64(1 << 20) + full.substr(8);
  expect_error(case_file("hdr_too_long.safetensors", big), "exceeds");
  std::string huge = le64(~uint64_t(0)) + full.substr(8);
  expect_error(case_file("hdr_huge.safetensors", huge), "exceeds");

  // Truncated: data cut off -> offsets beyond the file.
  expect_error(case_file("truncated.safetensors", full.substr(0, full.size() - 3)), "beyond");
  // Truncated inside the header.
  expect_error(case_file("truncated_hdr.safetensors", full.substr(0, 20)), "exceeds");

  expect_error(case_file("not_json.safetensors", make_file("this is not json", ok_data)), "JSON");
  expect_error(case_file("json_array.safetensors", make_file("[1,2,3]", ok_data)), "object");
  expect_error(
      case_file("offsets_beyond.safetensors",
                make_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", ok_data)),
      "beyond");
  expect_error(case_file("wrong_size.safetensors",
                         make_file(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                   std::string(12, '\0'))),
               "needs 12");
  expect_error(
      case_file("wrong_size_dtype.safetensors",
                make_file(R"({"x":{"dtype":"I64","shape":[2],"data_offsets":[0,8]}})", ok_data)),
      "needs 16");
  expect_error(
      case_file("bad_dtype.safetensors",
                make_file(R"({"x":{"dtype":"F8","shape":[2],"data_offsets":[0,8]}})", ok_data)),
      "dtype");
  expect_error(
      case_file("neg_shape.safetensors",
                make_file(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", ok_data)),
      "shape");
  expect_error(
      case_file("float_shape.safetensors",
                make_file(R"({"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", ok_data)),
      "shape");
  expect_error(
      case_file("reversed.safetensors",
                make_file(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", ok_data)),
      "");
  expect_error(case_file("no_offsets.safetensors",
                         make_file(R"({"x":{"dtype":"F32","shape":[2]}})", ok_data)),
               "data_offsets");
  expect_error(case_file("overlap.safetensors",
                         make_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                   R"("y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                   std::string(12, '\0'))),
               "overlap");
  expect_error(case_file("bad_meta.safetensors", make_file(R"({"__metadata__":{"k":3}})", "")),
               "__metadata__");
  expect_error(case_file("overflow.safetensors",
                         make_file(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],)"
                                   R"("data_offsets":[0,8]}})",
                                   ok_data)),
               "too large");
}

TEST(Safetensors, LoadsFixtureFiles) {
  const std::string fbank_path = kFixtures + "/frontend/ast_kaldi_fbank_16k.safetensors";
  if (!fs::exists(fbank_path)) GTEST_SKIP() << "fixtures not found: " << kFixtures;

  SafetensorsFile fb(fbank_path);
  EXPECT_EQ(fb.size(), 11u);
  EXPECT_EQ(fb.names().front(), "mel_banks");
  EXPECT_EQ(fb.info("mel_banks").shape, (std::vector<int64_t>{128, 257}));
  EXPECT_EQ(fb.info("chord_chirp.fbank").shape, (std::vector<int64_t>{368, 128}));
  EXPECT_EQ(fb.info("noise.fbank").shape, (std::vector<int64_t>{1022, 128}));
  EXPECT_EQ(fb.info("silence.fbank").shape, (std::vector<int64_t>{48, 128}));
  EXPECT_EQ(fb.info("clipped.fbank").shape, (std::vector<int64_t>{128, 128}));
  EXPECT_EQ(fb.info("speech.fbank").shape, (std::vector<int64_t>{577, 128}));
  EXPECT_EQ(fb.info("speech.input_1024").shape, (std::vector<int64_t>{1024, 128}));
  EXPECT_EQ(fb.read_f32("silence.fbank").size(), 48u * 128u);
  EXPECT_EQ(fb.metadata().count("reference"), 1u);

  const std::string panns = kFixtures + "/models/panns_cnn14_r16.weights.safetensors";
  if (fs::exists(panns)) {
    SafetensorsFile p(panns);
    const auto names = p.names();
    ASSERT_GE(names.size(), 6u);
    EXPECT_EQ(names[0], "logmel_extractor.melW");  // file (state_dict) order
    EXPECT_EQ(p.info("logmel_extractor.melW").shape, (std::vector<int64_t>{513, 64}));
    const auto& nbt = p.info("bn0.num_batches_tracked");
    EXPECT_EQ(nbt.dtype, "I64");
    EXPECT_TRUE(nbt.shape.empty());
    EXPECT_EQ(p.read_i64("bn0.num_batches_tracked").size(), 1u);
    EXPECT_THROW(p.read_f32("bn0.num_batches_tracked"), Error);
  }

  // Every stored safetensors fixture parses and every F32 tensor reads.
  size_t files = 0;
  for (const char* sub : {"frontend", "models", "fullsize"}) {
    const fs::path d = fs::path(kFixtures) / sub;
    if (!fs::is_directory(d)) continue;
    for (const auto& entry : fs::directory_iterator(d)) {
      if (entry.path().extension() != ".safetensors") continue;
      SCOPED_TRACE(entry.path().string());
      SafetensorsFile f(entry.path().string());
      ++files;
      for (const auto& name : f.names()) {
        const auto& info = f.info(name);
        if (info.dtype == "F32") {
          EXPECT_EQ(f.read_f32(name).size(), info.num_elements);
        }
      }
    }
  }
  EXPECT_GE(files, 1u);
}

}  // namespace
}  // namespace earmark
