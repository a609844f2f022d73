#pragma once
// Small integer hashes shared across the library.
#include <cstdint>

namespace earmark {

// A bijective 32-bit mixer (the "lowbias32" constants): spreads packed values evenly over the key
// space, losing no entropy.
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

}  // namespace earmark
