#pragma once
// An immutable, memory-mapped run of landmarks sorted by key: the unit the on-disk index is made
// of. Adding references writes a new segment; compaction merges segments and drops removed
// references. Layout (little-endian):
//   magic "EMKSEG\0\1" | u32 version | u32 settings_json_bytes | u64 entries | u32 dir_bits |
//   u32 peaks | u64 checksum (FNV-1a of everything after the header block) |
//   settings JSON (padded to 8) | u32 directory[2^dir_bits + 1] | u32 keys[n] | u32 frames[n] |
//   u8 pitch_codes[n] | when peaks > 0: zero padding to a multiple of 4, u32 peak_frames[peaks],
//   u16 peak_pitches[peaks] (the references' spectral peaks, sorted by frame)
// The directory maps the top dir_bits of a key to its range of entries. Version 1 had no peaks
// (the field was reserved, 0) and is still read.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "earmark/index/landmark_index.h"
#include "earmark/storage/atomic_file.h"

namespace earmark {

constexpr uint32_t kSegmentFormatVersion = 2;

struct SegmentWriteStats {
  size_t entries = 0;
  size_t capped_entries = 0;  // dropped from heavy buckets
  size_t bytes = 0;
};

// Sorts `entries` (and `peaks`, by frame) and writes them atomically to `path`. Keys with more
// than `bucket_cap` postings keep an evenly spread subset of bucket_cap: such hashes say little
// and cost much.
SegmentWriteStats write_segment(const std::string& path, std::vector<IndexEntry>& entries,
                                std::vector<ReferencePeak>& peaks, const nlohmann::json& settings,
                                size_t bucket_cap);
inline SegmentWriteStats write_segment(const std::string& path, std::vector<IndexEntry>& entries,
                                       const nlohmann::json& settings, size_t bucket_cap) {
  std::vector<ReferencePeak> none;
  return write_segment(path, entries, none, settings, bucket_cap);
}

class Segment : public LandmarkIndex {
 public:
  // Validates the header and the directory; throws earmark::Error on any inconsistency.
  explicit Segment(const std::string& path);

  size_t size() const override { return entries_; }
  void search(size_t n, const uint32_t* keys, std::vector<SearchHit>& hits) const override;
  void peaks(uint32_t first, uint32_t last, std::vector<ReferencePeak>& out) const override;
  size_t num_peaks() const { return peaks_; }
  ReferencePeak peak(size_t i) const { return {peak_frames_[i], peak_pitch_[i]}; }

  const nlohmann::json& settings() const { return settings_; }
  size_t file_bytes() const { return file_->size(); }
  const std::string& path() const { return file_->path(); }
  // Recomputes the checksum (reads the whole file).
  bool verify() const;

  // Sequential access for compaction.
  IndexEntry entry(size_t i) const { return {keys_[i], frames_[i], pitch_[i]}; }

 private:
  std::unique_ptr<MappedFile> file_;
  nlohmann::json settings_;
  size_t entries_ = 0;
  uint32_t dir_bits_ = 0;
  uint64_t checksum_ = 0;
  size_t payload_offset_ = 0;
  const uint32_t* directory_ = nullptr;
  const uint32_t* keys_ = nullptr;
  const uint32_t* frames_ = nullptr;
  const uint8_t* pitch_ = nullptr;
  size_t peaks_ = 0;
  const uint32_t* peak_frames_ = nullptr;
  const uint16_t* peak_pitch_ = nullptr;
};

// Several segments searched as one.
class SegmentSet : public LandmarkIndex {
 public:
  void add(std::unique_ptr<Segment> segment) { segments_.push_back(std::move(segment)); }
  const std::vector<std::unique_ptr<Segment>>& segments() const { return segments_; }
  size_t size() const override;
  void search(size_t n, const uint32_t* keys, std::vector<SearchHit>& hits) const override;
  void peaks(uint32_t first, uint32_t last, std::vector<ReferencePeak>& out) const override;

 private:
  std::vector<std::unique_ptr<Segment>> segments_;
};

}  // namespace earmark
