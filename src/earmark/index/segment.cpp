#include "earmark/index/segment.h"

#include <algorithm>
#include <cstring>

#include "earmark/common/bytes.h"
#include "earmark/common/checksum.h"
#include "earmark/common/error.h"

namespace earmark {

namespace {

constexpr char kMagic[8] = {'E', 'M', 'K', 'S', 'E', 'G', '\0', '\1'};
constexpr size_t kHeaderBytes = 48;

uint32_t directory_bits_for(size_t entries) {
  // About 16 entries per directory slot, between 2^8 and 2^22 slots.
  uint32_t bits = 8;
  while (bits < 22 && (size_t(1) << bits) * 16 < entries) ++bits;
  return bits;
}

// Zero bytes between the u8 pitch codes of n entries and the u32 peak frames of m peaks.
uint64_t peak_padding(uint64_t n, uint64_t m) { return m > 0 ? (4 - n % 4) % 4 : 0; }

}  // namespace

SegmentWriteStats write_segment(const std::string& path, std::vector<IndexEntry>& entries,
                                std::vector<ReferencePeak>& peaks, const nlohmann::json& settings,
                                size_t bucket_cap) {
  std::sort(entries.begin(), entries.end(), [](const IndexEntry& a, const IndexEntry& b) {
    return a.key != b.key ? a.key < b.key : a.frame < b.frame;
  });
  SegmentWriteStats stats;
  if (bucket_cap > 0) {
    size_t out = 0;
    for (size_t i = 0; i < entries.size();) {
      size_t j = i;
      while (j < entries.size() && entries[j].key == entries[i].key) ++j;
      size_t n = j - i;
      if (n <= bucket_cap) {
        for (size_t k = i; k < j; ++k) entries[out++] = entries[k];
      } else {
        for (size_t k = 0; k < bucket_cap; ++k) entries[out++] = entries[i + k * n / bucket_cap];
        stats.capped_entries += n - bucket_cap;
      }
      i = j;
    }
    entries.resize(out);
  }
  const size_t n = entries.size(), m = peaks.size();
  if (n > 0xffffffffULL || m > 0xffffffffULL) throw Error("segment too large: " + path);
  std::sort(peaks.begin(), peaks.end(), [](const ReferencePeak& a, const ReferencePeak& b) {
    return a.frame != b.frame ? a.frame < b.frame : a.pitch < b.pitch;
  });
  std::vector<uint32_t> peak_frames(m);
  std::vector<uint16_t> peak_pitch(m);
  for (size_t i = 0; i < m; ++i) {
    peak_frames[i] = peaks[i].frame;
    peak_pitch[i] = peaks[i].pitch;
  }
  const std::vector<unsigned char> padding(peak_padding(n, m), 0);
  const uint32_t bits = directory_bits_for(n);

  std::string json = settings.dump();
  json.resize((json.size() + 7) / 8 * 8, ' ');

  std::vector<uint32_t> directory((size_t(1) << bits) + 1, 0);
  for (const IndexEntry& e : entries) directory[(e.key >> (32 - bits)) + 1]++;
  for (size_t i = 1; i < directory.size(); ++i) directory[i] += directory[i - 1];
  std::vector<uint32_t> keys(n), frames(n);
  std::vector<uint8_t> pitch(n);
  for (size_t i = 0; i < n; ++i) {
    keys[i] = entries[i].key;
    frames[i] = entries[i].frame;
    pitch[i] = entries[i].pitch_code;
  }
  uint64_t sum = kFnvSeed;
  sum = fnv1a(sum, json.data(), json.size());
  sum = fnv1a(sum, directory.data(), directory.size() * 4);
  sum = fnv1a(sum, keys.data(), n * 4);
  sum = fnv1a(sum, frames.data(), n * 4);
  sum = fnv1a(sum, pitch.data(), n);
  sum = fnv1a(sum, padding.data(), padding.size());
  sum = fnv1a(sum, peak_frames.data(), m * 4);
  sum = fnv1a(sum, peak_pitch.data(), m * 2);

  std::vector<unsigned char> header;
  header.insert(header.end(), kMagic, kMagic + 8);
  put<uint32_t>(header, kSegmentFormatVersion);
  put<uint32_t>(header, uint32_t(json.size()));
  put<uint64_t>(header, n);
  put<uint32_t>(header, bits);
  put<uint32_t>(header, uint32_t(m));
  put<uint64_t>(header, sum);
  header.resize(kHeaderBytes, 0);

  AtomicFileWriter out(path);
  out.write(header.data(), header.size());
  out.write(json.data(), json.size());
  out.write(directory.data(), directory.size() * 4);
  out.write(keys.data(), n * 4);
  out.write(frames.data(), n * 4);
  out.write(pitch.data(), n);
  out.write(padding.data(), padding.size());
  out.write(peak_frames.data(), m * 4);
  out.write(peak_pitch.data(), m * 2);
  stats.entries = n;
  stats.bytes = out.bytes_written();
  out.commit();
  return stats;
}

Segment::Segment(const std::string& path) : file_(std::make_unique<MappedFile>(path)) {
  auto bad = [&](const std::string& why) {
    throw Error("corrupt index segment " + path + ": " + why);
  };
  const unsigned char* p = file_->data();
  const size_t size = file_->size();
  if (size < kHeaderBytes || std::memcmp(p, kMagic, 8) != 0) bad("not an Earmark segment");
  uint32_t version = get<uint32_t>(p + 8);
  if (version < 1 || version > kSegmentFormatVersion)
    throw Error("index segment " + path + " has format version " + std::to_string(version) +
                ", this build reads versions 1 to " + std::to_string(kSegmentFormatVersion));
  uint32_t json_bytes = get<uint32_t>(p + 12);
  uint64_t n = get<uint64_t>(p + 16);
  dir_bits_ = get<uint32_t>(p + 24);
  const uint64_t m = version >= 2 ? get<uint32_t>(p + 28) : 0;
  checksum_ = get<uint64_t>(p + 32);
  if (dir_bits_ < 1 || dir_bits_ > 24) bad("bad directory size");
  const uint64_t dir_entries = (uint64_t(1) << dir_bits_) + 1;
  const uint64_t padding = peak_padding(n, m);
  const uint64_t expected =
      kHeaderBytes + uint64_t(json_bytes) + dir_entries * 4 + n * 9 + padding + m * 6;
  if (n > 0xffffffffULL || expected != size)
    bad("size " + std::to_string(size) + " does not match its header (" + std::to_string(expected) +
        "): truncated or damaged");
  try {
    settings_ = nlohmann::json::parse(
        std::string(reinterpret_cast<const char*>(p) + kHeaderBytes, json_bytes));
  } catch (const std::exception&) {
    bad("unreadable settings");
  }
  entries_ = size_t(n);
  payload_offset_ = kHeaderBytes;
  const unsigned char* q = p + kHeaderBytes + json_bytes;
  // Offsets are multiples of 8 up to here (header 48, JSON padded), so the u32 arrays are aligned.
  directory_ = reinterpret_cast<const uint32_t*>(q);
  keys_ = directory_ + dir_entries;
  frames_ = keys_ + n;
  pitch_ = reinterpret_cast<const uint8_t*>(frames_ + n);
  peaks_ = size_t(m);
  peak_frames_ = reinterpret_cast<const uint32_t*>(pitch_ + n + padding);
  peak_pitch_ = reinterpret_cast<const uint16_t*>(peak_frames_ + m);
  // The directory is trusted by search(), so check it now: monotone, ending at n.
  if (directory_[0] != 0 || directory_[dir_entries - 1] != n) bad("bad directory");
  for (uint64_t i = 1; i < dir_entries; ++i)
    if (directory_[i] < directory_[i - 1]) bad("bad directory");
}

bool Segment::verify() const {
  const unsigned char* p = file_->data() + payload_offset_;
  return fnv1a(kFnvSeed, p, file_->size() - payload_offset_) == checksum_;
}

void Segment::search(size_t n, const uint32_t* keys, std::vector<SearchHit>& hits) const {
  const uint32_t shift = 32 - dir_bits_;
  // Each probe is a few cache misses in a large mapped file (directory, then keys, then the
  // postings): prefetching the directory entries of later probes, and then the key ranges they
  // point to, overlaps those misses instead of waiting for them one by one.
  constexpr size_t kDirectoryAhead = 16, kKeysAhead = 8;
  for (size_t i = 0; i < n; ++i) {
    if (i + kDirectoryAhead < n)
      __builtin_prefetch(directory_ + (keys[i + kDirectoryAhead] >> shift));
    if (i + kKeysAhead < n) {
      const uint32_t first = directory_[keys[i + kKeysAhead] >> shift];
      __builtin_prefetch(keys_ + first);
      __builtin_prefetch(frames_ + first);
    }
    const uint32_t key = keys[i];
    const uint32_t slot = key >> shift;
    const uint32_t* begin = keys_ + directory_[slot];
    const uint32_t* end = keys_ + directory_[slot + 1];
    const uint32_t* it = std::lower_bound(begin, end, key);
    for (; it != end && *it == key; ++it) {
      size_t e = size_t(it - keys_);
      hits.push_back({uint32_t(i), frames_[e], pitch_[e]});
    }
  }
}

void Segment::peaks(uint32_t first, uint32_t last, std::vector<ReferencePeak>& out) const {
  const uint32_t* it = std::lower_bound(peak_frames_, peak_frames_ + peaks_, first);
  for (; it != peak_frames_ + peaks_ && *it < last; ++it)
    out.push_back({*it, peak_pitch_[it - peak_frames_]});
}

size_t SegmentSet::size() const {
  size_t total = 0;
  for (const auto& s : segments_) total += s->size();
  return total;
}

void SegmentSet::search(size_t n, const uint32_t* keys, std::vector<SearchHit>& hits) const {
  for (const auto& s : segments_) s->search(n, keys, hits);
}

void SegmentSet::peaks(uint32_t first, uint32_t last, std::vector<ReferencePeak>& out) const {
  // A reference lives in one segment, but a range may span several references.
  const size_t before = out.size();
  for (const auto& s : segments_) s->peaks(first, last, out);
  if (segments_.size() > 1)
    std::sort(out.begin() + before, out.end(),
              [](const ReferencePeak& a, const ReferencePeak& b) { return a.frame < b.frame; });
}

}  // namespace earmark
