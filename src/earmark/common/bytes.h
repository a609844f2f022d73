#pragma once
// Fixed-size values in and out of byte buffers, for the on-disk formats (host byte order:
// little-endian on every platform Earmark builds for).
#include <cstring>

namespace earmark {

// Appends v to a std::string or std::vector of bytes.
template <typename T, typename Buffer>
void put(Buffer& b, T v) {
  unsigned char tmp[sizeof(T)];
  std::memcpy(tmp, &v, sizeof(T));
  b.insert(b.end(), tmp, tmp + sizeof(T));
}

template <typename T>
T get(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace earmark
