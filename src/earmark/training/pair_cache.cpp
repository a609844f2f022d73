#include "earmark/training/pair_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "earmark/common/error.h"
#include "earmark/storage/atomic_file.h"

namespace earmark {

namespace {
constexpr char kCacheMagic[8] = {'E', 'M', 'P', 'A', 'I', 'R', 'S', '1'};
struct CacheHeader {
  char magic[8];
  uint64_t seed;
  uint64_t count;
  uint32_t window_frames;
  uint32_t mel_bins;
  uint64_t recipe_hash;
};

CacheHeader header_of(const PairCacheKey& key) {
  CacheHeader h{};
  std::memcpy(h.magic, kCacheMagic, 8);
  h.seed = key.seed;
  h.count = key.count;
  h.window_frames = uint32_t(key.shape.window_frames);
  h.mel_bins = uint32_t(key.shape.mel_bins);
  h.recipe_hash = key.recipe_hash;
  return h;
}

// The header, checked for sense; false if the file is not a pair cache.
bool read_header(std::ifstream& in, CacheHeader& h) {
  if (!in.read(reinterpret_cast<char*>(&h), sizeof h)) return false;
  return std::memcmp(h.magic, kCacheMagic, 8) == 0 && h.window_frames >= 1 &&
         h.window_frames <= 10000 && h.mel_bins >= 1 && h.mel_bins <= 1024 &&
         h.count <= (uint64_t(1) << 40) / (2ull * h.window_frames * h.mel_bins);
}

PairCacheKey key_of(const CacheHeader& h) {
  PairCacheKey k;
  k.seed = h.seed;
  k.count = h.count;
  k.shape = PairShape{int(h.window_frames), int(h.mel_bins)};
  k.recipe_hash = h.recipe_hash;
  return k;
}
}  // namespace

PairCache::PairCache(const PairCacheKey& key)
    : key_(key), data_(size_t(key.count) * 2 * key.shape.values(), 0) {}

uint8_t PairCache::quantise(float v) {
  return uint8_t(std::clamp(std::lround((v + 16.0f) * 8.0f), 0L, 255L));
}

void PairCache::anchor(size_t i, float* out) const {
  const uint8_t* p = data_.data() + (2 * i) * shape().values();
  for (size_t k = 0; k < shape().values(); ++k) out[k] = dequantise(p[k]);
}

void PairCache::positive(size_t i, float* out) const {
  const uint8_t* p = data_.data() + (2 * i + 1) * shape().values();
  for (size_t k = 0; k < shape().values(); ++k) out[k] = dequantise(p[k]);
}

void PairCache::set(size_t i, const float* anchor, const float* positive) {
  uint8_t* dst = data_.data() + 2 * i * shape().values();
  for (size_t k = 0; k < shape().values(); ++k) dst[k] = quantise(anchor[k]);
  for (size_t k = 0; k < shape().values(); ++k) dst[shape().values() + k] = quantise(positive[k]);
}

PairCache PairCache::read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("training pairs: cannot read " + path);
  CacheHeader h{};
  if (!read_header(in, h)) throw Error("training pairs: " + path + " is not a pair cache");
  PairCache cache(key_of(h));
  if (!in.read(reinterpret_cast<char*>(cache.data_.data()), std::streamsize(cache.data_.size())))
    throw Error("training pairs: " + path + " is truncated");
  return cache;
}

bool PairCache::read_if(const std::string& path, const PairCacheKey& key, PairCache& out) {
  std::ifstream in(path, std::ios::binary);
  CacheHeader h{};
  const CacheHeader want = header_of(key);
  if (!in || !read_header(in, h) || std::memcmp(&h, &want, sizeof h) != 0) return false;
  PairCache cache(key);
  if (!in.read(reinterpret_cast<char*>(cache.data_.data()), std::streamsize(cache.data_.size())))
    return false;
  out = std::move(cache);
  return true;
}

void PairCache::write(const std::string& path) const {
  const CacheHeader h = header_of(key_);
  AtomicFileWriter out(path);
  out.write(&h, sizeof h);
  out.write(data_.data(), data_.size());
  out.commit();
}

}  // namespace earmark
