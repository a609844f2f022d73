#include "earmark/matching/reference_timeline.h"

#include <algorithm>

namespace earmark {

void ReferenceTimeline::add(uint64_t base, uint32_t count, size_t ref) {
  if (!spans_.empty() && base < spans_.back().base) sorted_ = false;
  spans_.push_back({base, count, ref});
  if (!sorted_) {
    std::sort(spans_.begin(), spans_.end(),
              [](const Span& a, const Span& b) { return a.base < b.base; });
    sorted_ = true;
  }
}

const ReferenceTimeline::Span* ReferenceTimeline::find(uint64_t frame) const {
  auto it = std::upper_bound(spans_.begin(), spans_.end(), frame,
                             [](uint64_t f, const Span& s) { return f < s.base; });
  if (it == spans_.begin()) return nullptr;
  --it;
  if (frame >= it->base + it->count) return nullptr;
  return &*it;
}

}  // namespace earmark
