#pragma once
// FNV-1a, 64 bit: a fast checksum that detects torn or damaged stored data (not an adversary).
#include <cstddef>
#include <cstdint>

namespace earmark {

constexpr uint64_t kFnvSeed = 0xcbf29ce484222325ULL;

inline uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace earmark
