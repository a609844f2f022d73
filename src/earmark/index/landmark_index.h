#pragma once
// The landmark index: hash key -> postings (anchor frame on the catalogue's global timeline,
// anchor pitch code). One abstract interface with batched search, so the in-memory builder,
// the memory-mapped segment and a set of segments plug in behind it alike.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace earmark {

struct IndexEntry {
  uint32_t key = 0;
  uint32_t frame = 0;  // global timeline: reference base + frame within the reference
  uint8_t pitch_code = 0;
};

struct SearchHit {
  uint32_t query = 0;  // position of the key in the searched batch
  uint32_t frame = 0;
  uint8_t pitch_code = 0;
};

class LandmarkIndex {
 public:
  virtual ~LandmarkIndex() = default;
  virtual size_t size() const = 0;
  // Appends a hit for every posting of keys[i], i in [0, n). Keys need not be sorted.
  virtual void search(size_t n, const uint32_t* keys, std::vector<SearchHit>& hits) const = 0;
};

}  // namespace earmark
