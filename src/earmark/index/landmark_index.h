#pragma once
// The landmark index: hash key -> postings (anchor frame on the catalogue's global timeline,
// anchor pitch code). One abstract interface with batched search, so the in-memory builder,
// the memory-mapped segment and a set of segments plug in behind it alike.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace earmark {

struct IndexEntry {
  uint32_t key = 0;
  uint32_t frame = 0;  // global timeline: reference base + frame within the reference
  uint8_t pitch_code = 0;
};

// A spectral peak stored with a reference, to check a candidate alignment against all of the
// reference's peaks rather than only the few that form hashes matching the query.
struct ReferencePeak {
  uint32_t frame = 0;  // global timeline
  uint16_t pitch = 0;  // semitones (MIDI scale) in units of 1/kPitchUnits
  static constexpr float kPitchUnits = 32.0f;
  float semitones() const { return pitch / kPitchUnits; }
  static ReferencePeak at(uint32_t frame, float semitones) {
    const float units = std::clamp(std::round(semitones * kPitchUnits), 0.0f, 65535.0f);
    return {frame, uint16_t(units)};
  }
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
  // Appends the stored reference peaks with first <= frame < last, in frame order. An index that
  // stores none (written before they were) appends nothing.
  virtual void peaks(uint32_t first, uint32_t last, std::vector<ReferencePeak>& out) const {}
};

}  // namespace earmark
