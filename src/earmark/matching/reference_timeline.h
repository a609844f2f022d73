#pragma once
// References laid end to end on one global frame axis (with a gap between them), which is what
// the landmark index stores. Voting happens on that axis, so a cluster never needs to know
// which reference it belongs to until it has won.
#include <cstdint>
#include <string>
#include <vector>

namespace earmark {

class ReferenceTimeline {
 public:
  struct Span {
    uint64_t base = 0;
    uint32_t count = 0;
    size_t ref = 0;  // caller's index (e.g. into the catalogue listing)
  };
  // Frames left empty between references, so no alignment can run from one into the next.
  static constexpr uint32_t kGapFrames = 1000;

  void add(uint64_t base, uint32_t count, size_t ref);
  // The reference whose span contains `frame`, or nullptr (gap, removed reference).
  const Span* find(uint64_t frame) const;
  size_t size() const { return spans_.size(); }

 private:
  std::vector<Span> spans_;  // sorted by base
  bool sorted_ = true;
};

}  // namespace earmark
