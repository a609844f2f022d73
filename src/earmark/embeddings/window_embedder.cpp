#include "earmark/embeddings/window_embedder.h"

#include <algorithm>
#include <string>

#include "earmark/common/error.h"

namespace earmark {

WindowEmbedder::WindowEmbedder(Embedder& embedder, int hop_frames, size_t batch)
    : embedder_(embedder),
      hop_(hop_frames),
      frames_per_window_(embedder.window_frames()),
      bins_(embedder.mel_bins()),
      dim_(embedder.dim()),
      batch_(std::max<size_t>(1, batch)) {
  if (hop_frames < 1 || hop_frames > 1000)
    throw Error("window hop must be 1 to 1000 frames (10 ms each), got " +
                std::to_string(hop_frames));
  if (bins_ != fbank_.num_bins())
    throw Error("embedder " + embedder.name() + " expects " + std::to_string(bins_) +
                " mel bins; the features module makes " + std::to_string(fbank_.num_bins()));
}

void WindowEmbedder::consume(const float* samples, size_t count) {
  samples_.insert(samples_.end(), samples, samples + count);
  const size_t length = fbank_.frame_length(), shift = fbank_.frame_shift();
  size_t used = 0;
  while (samples_.size() - used >= length) {
    std::vector<float> frame(static_cast<size_t>(bins_));
    fbank_.compute_frame(samples_.data() + used, frame.data());
    frames_.push_back(std::move(frame));
    ++frames_seen_;
    used += shift;
    // Cut every window whose last frame has arrived.
    const size_t first_kept = frames_seen_ - frames_.size();
    while (next_window_ * hop_ + frames_per_window_ <= frames_seen_) {
      const size_t begin = next_window_ * hop_ - first_kept;
      for (int f = 0; f < frames_per_window_; ++f)
        pending_.insert(pending_.end(), frames_[begin + f].begin(), frames_[begin + f].end());
      ++pending_count_;
      ++next_window_;
      if (pending_count_ == batch_) flush_batch();
    }
    // Frames before the next window's start are no longer needed.
    while (!frames_.empty() && frames_seen_ - frames_.size() < next_window_ * hop_)
      frames_.pop_front();
  }
  samples_.erase(samples_.begin(), samples_.begin() + used);
}

void WindowEmbedder::finish() {
  if (next_window_ == 0) {
    // Shorter than a window: what there is, then silence (the fbank's floor).
    std::vector<float> window(size_t(frames_per_window_) * bins_, kFbankLogFloor);
    for (size_t f = 0; f < frames_.size() && f < size_t(frames_per_window_); ++f)
      std::copy(frames_[f].begin(), frames_[f].end(), window.begin() + f * bins_);
    if (!frames_.empty()) {
      pending_.insert(pending_.end(), window.begin(), window.end());
      ++pending_count_;
      ++next_window_;
    }
  }
  flush_batch();
}

void WindowEmbedder::flush_batch() {
  if (pending_count_ == 0) return;
  const size_t at = vectors_.size();
  vectors_.resize(at + pending_count_ * size_t(dim_));
  embedder_.embed(pending_.data(), pending_count_, vectors_.data() + at);
  pending_.clear();
  pending_count_ = 0;
}

}  // namespace earmark
