#include "earmark/index/segment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"

namespace earmark {
namespace {

namespace fs = std::filesystem;
using testutil::read_file;
using testutil::TempDir;
using testutil::write_file;

// Header layout (see segment.h).
constexpr size_t kVersionOffset = 8;
constexpr size_t kJsonBytesOffset = 12;
constexpr size_t kEntriesOffset = 16;
constexpr size_t kDirBitsOffset = 24;
constexpr size_t kHeaderBytes = 48;

const nlohmann::json kSettings = {{"hash", {{"fft_size", 1024}}}, {"note", "segment test"}};

template <typename T>
T get_at(const std::string& bytes, size_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}
template <typename T>
void set_at(std::string& bytes, size_t offset, T v) {
  std::memcpy(&bytes[offset], &v, sizeof(T));
}

using Posting = std::pair<uint32_t, uint8_t>;  // frame, pitch code

// Random entries: keys from a pool (so many keys have several postings), spread over the whole
// key range so that every directory slot region is exercised.
std::vector<IndexEntry> random_entries(uint32_t seed, size_t n, std::vector<uint32_t>& pool) {
  std::mt19937 gen(seed);
  pool.clear();
  for (int i = 0; i < 3000; ++i) pool.push_back(gen());
  pool.push_back(0u);
  pool.push_back(0xffffffffu);
  pool.push_back(0x80000000u);
  std::vector<IndexEntry> out;
  for (size_t i = 0; i < n; ++i) {
    IndexEntry e;
    e.key = pool[gen() % pool.size()];
    e.frame = gen() % 5000000u;
    e.pitch_code = uint8_t(gen());
    out.push_back(e);
  }
  return out;
}

std::multimap<uint32_t, Posting> as_multimap(const std::vector<IndexEntry>& entries) {
  std::multimap<uint32_t, Posting> m;
  for (const IndexEntry& e : entries) m.insert({e.key, {e.frame, e.pitch_code}});
  return m;
}

// Postings of keys[i] according to the index, per query position.
std::vector<std::multiset<Posting>> search_all(const LandmarkIndex& index,
                                               const std::vector<uint32_t>& keys) {
  std::vector<SearchHit> hits;
  index.search(keys.size(), keys.data(), hits);
  std::vector<std::multiset<Posting>> out(keys.size());
  for (const SearchHit& h : hits) {
    EXPECT_LT(h.query, keys.size());
    if (h.query < keys.size()) out[h.query].insert({h.frame, h.pitch_code});
  }
  return out;
}

std::multiset<Posting> expected_postings(const std::multimap<uint32_t, Posting>& m, uint32_t key) {
  std::multiset<Posting> out;
  auto range = m.equal_range(key);
  for (auto it = range.first; it != range.second; ++it) out.insert(it->second);
  return out;
}

class SegmentTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(tmp_.ok()); }

  // Writes a valid segment of `n` random entries and returns its bytes.
  std::string make_valid(const std::string& name, size_t n = 2000) {
    std::vector<uint32_t> pool;
    auto entries = random_entries(7, n, pool);
    write_segment(tmp_ / name, entries, kSettings, 0);
    return read_file(tmp_ / name);
  }

  // Writes `bytes` and expects Segment to reject them with earmark::Error (never a crash).
  void expect_rejected(const std::string& bytes, const std::string& what) {
    const std::string path = tmp_ / "corrupt.emk";
    write_file(path, bytes);
    try {
      Segment s(path);
      ADD_FAILURE() << what << ": corrupt segment accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("corrupt.emk"), std::string::npos)
          << what << ": message should name the file: " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": threw a non-earmark exception: " << e.what();
    }
  }

  TempDir tmp_;
};

TEST_F(SegmentTest, SearchReturnsExactlyThePostingsOfEachKey) {
  for (size_t n : {size_t(0), size_t(1), size_t(17), size_t(5000), size_t(60000)}) {
    SCOPED_TRACE("entries: " + std::to_string(n));
    std::vector<uint32_t> pool;
    std::vector<IndexEntry> entries = random_entries(uint32_t(n + 1), n, pool);
    const auto truth = as_multimap(entries);
    const std::string path = tmp_ / ("seg-" + std::to_string(n) + ".emk");
    std::vector<IndexEntry> copy = entries;
    SegmentWriteStats ws = write_segment(path, copy, kSettings, 0);
    EXPECT_EQ(ws.entries, n);
    EXPECT_EQ(ws.capped_entries, 0u);
    EXPECT_EQ(ws.bytes, fs::file_size(path));

    Segment seg(path);
    EXPECT_EQ(seg.size(), n);
    EXPECT_EQ(seg.settings(), kSettings);
    EXPECT_EQ(seg.file_bytes(), ws.bytes);
    EXPECT_TRUE(seg.verify());

    // Every pool key (present or not), neighbours of present keys, and random absent keys, in a
    // shuffled order with repeats.
    std::vector<uint32_t> keys = pool;
    for (const IndexEntry& e : entries) {
      keys.push_back(e.key + 1);
      keys.push_back(e.key - 1);
    }
    std::mt19937 gen(99);
    for (int i = 0; i < 2000; ++i) keys.push_back(gen());
    keys.insert(keys.end(), pool.begin(), pool.begin() + 100);
    std::shuffle(keys.begin(), keys.end(), gen);

    auto got = search_all(seg, keys);
    size_t mismatches = 0;
    for (size_t i = 0; i < keys.size(); ++i)
      if (got[i] != expected_postings(truth, keys[i]) && ++mismatches < 5)
        ADD_FAILURE() << "key " << keys[i] << ": " << got[i].size() << " postings, expected "
                      << truth.count(keys[i]);
    EXPECT_EQ(mismatches, 0u);

    // Sequential access returns the entries sorted by key.
    std::vector<std::tuple<uint32_t, uint32_t, uint8_t>> seq, want;
    for (size_t i = 0; i < seg.size(); ++i) {
      IndexEntry e = seg.entry(i);
      seq.emplace_back(e.key, e.frame, e.pitch_code);
    }
    for (const IndexEntry& e : entries) want.emplace_back(e.key, e.frame, e.pitch_code);
    std::sort(want.begin(), want.end());
    EXPECT_TRUE(std::is_sorted(seq.begin(), seq.end(), [](const auto& a, const auto& b) {
      return std::get<0>(a) < std::get<0>(b);
    }));
    std::sort(seq.begin(), seq.end());
    EXPECT_EQ(seq, want);
  }
}

TEST_F(SegmentTest, SegmentSetSearchesAllSegments) {
  std::vector<uint32_t> pool1, pool2;
  auto a = random_entries(11, 3000, pool1);
  auto b = random_entries(12, 4000, pool2);
  // Share some keys between the two segments.
  for (size_t i = 0; i < 500; ++i) b[i].key = a[i].key;
  auto truth = as_multimap(a);
  for (const auto& kv : as_multimap(b)) truth.insert(kv);
  auto ca = a, cb = b;
  write_segment(tmp_ / "a.emk", ca, kSettings, 0);
  write_segment(tmp_ / "b.emk", cb, kSettings, 0);
  SegmentSet set;
  set.add(std::make_unique<Segment>(tmp_ / "a.emk"));
  set.add(std::make_unique<Segment>(tmp_ / "b.emk"));
  EXPECT_EQ(set.size(), 7000u);
  std::vector<uint32_t> keys = pool1;
  keys.insert(keys.end(), pool2.begin(), pool2.end());
  auto got = search_all(set, keys);
  for (size_t i = 0; i < keys.size(); ++i)
    ASSERT_EQ(got[i], expected_postings(truth, keys[i])) << "key " << keys[i];
}

TEST_F(SegmentTest, BucketCapKeepsAtMostCapPostingsPerKey) {
  const size_t cap = 8;
  std::vector<IndexEntry> entries;
  // key 1: 100 postings, key 2: exactly cap, key 3: cap + 1, key 4: 1.
  for (uint32_t i = 0; i < 100; ++i) entries.push_back({1u, i * 10, uint8_t(i)});
  for (uint32_t i = 0; i < cap; ++i) entries.push_back({2u << 20, 1000 + i, 2});
  for (uint32_t i = 0; i < cap + 1; ++i) entries.push_back({0xfffffff0u, 2000 + i, 3});
  entries.push_back({12345u, 77, 4});
  const auto truth = as_multimap(entries);
  std::shuffle(entries.begin(), entries.end(), std::mt19937(5));
  auto copy = entries;
  SegmentWriteStats ws = write_segment(tmp_ / "capped.emk", copy, kSettings, cap);
  EXPECT_EQ(ws.capped_entries, (100 - cap) + 1);
  EXPECT_EQ(ws.entries, entries.size() - ws.capped_entries);

  Segment seg(tmp_ / "capped.emk");
  EXPECT_EQ(seg.size(), ws.entries);
  const std::vector<uint32_t> keys = {1u, 2u << 20, 0xfffffff0u, 12345u};
  auto got = search_all(seg, keys);
  EXPECT_EQ(got[0].size(), cap);
  EXPECT_EQ(got[1], expected_postings(truth, 2u << 20));  // at the cap: untouched
  EXPECT_EQ(got[2].size(), cap);
  EXPECT_EQ(got[3], expected_postings(truth, 12345u));
  // What is kept is a subset of the original postings, spread over the bucket (not its head).
  for (size_t k : {size_t(0), size_t(2)}) {
    auto all = expected_postings(truth, keys[k]);
    for (const Posting& p : got[k]) EXPECT_TRUE(all.count(p)) << p.first;
  }
  uint32_t max_frame = 0;
  for (const Posting& p : got[0]) max_frame = std::max(max_frame, p.first);
  EXPECT_GE(max_frame, 800u) << "capped bucket should be an evenly spread subset";
}

TEST_F(SegmentTest, RejectsTruncatedFile) {
  const std::string bytes = make_valid("ok.emk");
  expect_rejected(bytes.substr(0, bytes.size() - 1), "truncated by one byte");
  expect_rejected(bytes.substr(0, kHeaderBytes), "header only");
  expect_rejected(bytes.substr(0, 20), "partial header");
  expect_rejected("", "empty file");
  expect_rejected(bytes + "x", "one byte too many");
}

TEST_F(SegmentTest, RejectsBadMagic) {
  std::string bytes = make_valid("ok.emk");
  bytes[0] = 'X';
  expect_rejected(bytes, "bad magic");
  bytes = make_valid("ok.emk");
  bytes[7] = '\2';
  expect_rejected(bytes, "bad magic suffix");
  expect_rejected(std::string(4096, '\0'), "zeros");
}

TEST_F(SegmentTest, RejectsWrongVersionSayingSo) {
  std::string bytes = make_valid("ok.emk");
  set_at<uint32_t>(bytes, kVersionOffset, kSegmentFormatVersion + 1);
  const std::string path = tmp_ / "v2.emk";
  write_file(path, bytes);
  try {
    Segment s(path);
    FAIL() << "accepted a future format version";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("version"), std::string::npos) << e.what();
  }
}

TEST_F(SegmentTest, RejectsGarbageDirectory) {
  const std::string good = make_valid("ok.emk", 3000);
  const uint32_t json_bytes = get_at<uint32_t>(good, kJsonBytesOffset);
  const uint32_t bits = get_at<uint32_t>(good, kDirBitsOffset);
  const uint64_t n = get_at<uint64_t>(good, kEntriesOffset);
  const size_t dir_off = kHeaderBytes + json_bytes;
  const size_t dir_entries = (size_t(1) << bits) + 1;
  ASSERT_EQ(good.size(), dir_off + dir_entries * 4 + n * 9);

  std::string bytes = good;
  set_at<uint32_t>(bytes, dir_off, 5);  // must start at 0
  expect_rejected(bytes, "directory not starting at 0");

  bytes = good;
  set_at<uint32_t>(bytes, dir_off + (dir_entries - 1) * 4, uint32_t(n + 1000));  // beyond n
  expect_rejected(bytes, "directory ending past the entries");

  bytes = good;
  set_at<uint32_t>(bytes, dir_off + (dir_entries / 2) * 4, 0xffffff00u);  // not monotone
  expect_rejected(bytes, "directory not monotone");

  bytes = good;
  std::mt19937 gen(3);
  for (size_t i = 0; i < dir_entries * 4; ++i) bytes[dir_off + i] = char(gen());
  expect_rejected(bytes, "random directory");

  bytes = good;
  set_at<uint32_t>(bytes, kDirBitsOffset, 0);
  expect_rejected(bytes, "zero directory bits");
  bytes = good;
  set_at<uint32_t>(bytes, kDirBitsOffset, 31);
  expect_rejected(bytes, "huge directory bits");
  bytes = good;
  set_at<uint32_t>(bytes, kDirBitsOffset, bits + 1);
  expect_rejected(bytes, "directory bits not matching the size");

  bytes = good;
  set_at<uint64_t>(bytes, kEntriesOffset, n + 1);
  expect_rejected(bytes, "entry count off by one");
  bytes = good;
  set_at<uint64_t>(bytes, kEntriesOffset, ~uint64_t(0));
  expect_rejected(bytes, "entry count overflowing");

  bytes = good;
  set_at<uint32_t>(bytes, kJsonBytesOffset, 0xfffffff8u);
  expect_rejected(bytes, "settings size beyond the file");
  bytes = good;
  for (size_t i = 0; i < json_bytes; ++i) bytes[kHeaderBytes + i] = '{';
  expect_rejected(bytes, "unreadable settings");
}

// Any single damaged byte of the header or the directory is either harmless or rejected with an
// earmark::Error; it never crashes, and search on an accepted file stays in bounds.
TEST_F(SegmentTest, RandomHeaderDamageNeverCrashes) {
  const std::string good = make_valid("ok.emk", 500);
  const uint32_t json_bytes = get_at<uint32_t>(good, kJsonBytesOffset);
  const size_t limit = std::min(good.size(), kHeaderBytes + json_bytes + 1100 * 4);
  std::mt19937 gen(17);
  const std::string path = tmp_ / "fuzz.emk";
  int accepted = 0, rejected = 0;
  for (int round = 0; round < 300; ++round) {
    std::string bytes = good;
    const int flips = 1 + int(gen() % 3);
    for (int f = 0; f < flips; ++f) bytes[gen() % limit] ^= char(1u << (gen() % 8));
    write_file(path, bytes);
    try {
      Segment s(path);
      ++accepted;
      std::vector<uint32_t> keys;
      for (int i = 0; i < 200; ++i) keys.push_back(gen());
      std::vector<SearchHit> hits;
      s.search(keys.size(), keys.data(), hits);
      for (const SearchHit& h : hits) ASSERT_LT(h.query, keys.size());
    } catch (const Error&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-earmark exception: " << e.what();
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(accepted + rejected, 0);
}

TEST_F(SegmentTest, VerifyDetectsAFlippedPayloadByte) {
  const std::string good = make_valid("ok.emk", 4000);
  const uint32_t json_bytes = get_at<uint32_t>(good, kJsonBytesOffset);
  const uint32_t bits = get_at<uint32_t>(good, kDirBitsOffset);
  const uint64_t n = get_at<uint64_t>(good, kEntriesOffset);
  const size_t keys_off = kHeaderBytes + json_bytes + ((size_t(1) << bits) + 1) * 4;
  const size_t frames_off = keys_off + n * 4;
  const size_t pitch_off = frames_off + n * 4;
  for (size_t off : {keys_off + 4 * 100 + 1, frames_off + 4 * (n / 2) + 2, pitch_off + n - 1,
                     size_t(kHeaderBytes + 2)}) {
    SCOPED_TRACE("offset " + std::to_string(off));
    std::string bytes = good;
    bytes[off] ^= 0x10;
    const std::string path = tmp_ / "flipped.emk";
    write_file(path, bytes);
    std::unique_ptr<Segment> s;
    try {
      s = std::make_unique<Segment>(path);
    } catch (const Error&) {
      continue;  // rejected outright is fine too
    }
    EXPECT_FALSE(s->verify());
  }
  write_file(tmp_ / "same.emk", good);
  EXPECT_TRUE(Segment(tmp_ / "same.emk").verify());
}

// Random reference peaks over frames [0, 200000) with pitches over the whole u16 range.
std::vector<ReferencePeak> random_peaks(uint32_t seed, size_t n) {
  std::mt19937 gen(seed);
  std::vector<ReferencePeak> out;
  for (size_t i = 0; i < n; ++i) out.push_back({uint32_t(gen() % 200000u), uint16_t(gen())});
  return out;
}

std::vector<ReferencePeak> peaks_between(std::vector<ReferencePeak> all, uint32_t first,
                                         uint32_t last) {
  std::vector<ReferencePeak> out;
  for (const ReferencePeak& p : all)
    if (p.frame >= first && p.frame < last) out.push_back(p);
  std::sort(out.begin(), out.end(), [](const ReferencePeak& a, const ReferencePeak& b) {
    return a.frame != b.frame ? a.frame < b.frame : a.pitch < b.pitch;
  });
  return out;
}

std::vector<std::pair<uint32_t, uint16_t>> as_pairs(const std::vector<ReferencePeak>& peaks) {
  std::vector<std::pair<uint32_t, uint16_t>> out;
  for (const ReferencePeak& p : peaks) out.push_back({p.frame, p.pitch});
  return out;
}

TEST_F(SegmentTest, StoresReferencePeaksAndReturnsThoseOfAFrameRange) {
  for (size_t n_entries : {size_t(0), size_t(1), size_t(4001)}) {  // every padding
    for (size_t n_peaks : {size_t(1), size_t(3), size_t(20000)}) {
      std::vector<uint32_t> pool;
      auto entries = random_entries(3, n_entries, pool);
      auto peaks = random_peaks(uint32_t(n_peaks), n_peaks);
      const auto all = peaks;
      const std::string path = tmp_ / "p.emk";
      write_segment(path, entries, peaks, kSettings, 0);
      Segment seg(path);
      ASSERT_EQ(seg.num_peaks(), n_peaks);
      EXPECT_TRUE(seg.verify());
      for (auto [first, last] : {std::pair<uint32_t, uint32_t>{0, 200000},
                                 {0, 1},
                                 {5000, 5100},
                                 {123456, 150000},
                                 {199990, 0xffffffffu},
                                 {7, 7}}) {
        std::vector<ReferencePeak> got;
        seg.peaks(first, last, got);
        EXPECT_EQ(as_pairs(got), as_pairs(peaks_between(all, first, last)))
            << n_entries << " entries, " << n_peaks << " peaks, [" << first << ", " << last << ")";
      }
      // The landmarks are unaffected by the peaks after them.
      std::vector<uint32_t> keys(pool.begin(), pool.begin() + std::min<size_t>(pool.size(), 50));
      auto got = search_all(seg, keys);
      const auto truth = as_multimap(entries);
      for (size_t i = 0; i < keys.size(); ++i) ASSERT_EQ(got[i], expected_postings(truth, keys[i]));
      // Truncating the peaks is caught like any other truncation.
      const std::string bytes = read_file(path);
      expect_rejected(bytes.substr(0, bytes.size() - 2), "truncated peaks");
    }
  }
}

TEST_F(SegmentTest, SegmentSetReturnsThePeaksOfEverySegmentInFrameOrder) {
  auto a = random_peaks(21, 3000), b = random_peaks(22, 5000);
  auto all = a;
  all.insert(all.end(), b.begin(), b.end());
  std::vector<IndexEntry> none_a, none_b;
  write_segment(tmp_ / "a.emk", none_a, a, kSettings, 0);
  write_segment(tmp_ / "b.emk", none_b, b, kSettings, 0);
  SegmentSet set;
  set.add(std::make_unique<Segment>(tmp_ / "a.emk"));
  set.add(std::make_unique<Segment>(tmp_ / "b.emk"));
  std::vector<ReferencePeak> got;
  set.peaks(40000, 90000, got);
  const auto want = peaks_between(all, 40000, 90000);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 1; i < got.size(); ++i) ASSERT_LE(got[i - 1].frame, got[i].frame);
  auto sorted = got;
  std::sort(sorted.begin(), sorted.end(), [](const ReferencePeak& x, const ReferencePeak& y) {
    return x.frame != y.frame ? x.frame < y.frame : x.pitch < y.pitch;
  });
  EXPECT_EQ(as_pairs(sorted), as_pairs(want));
}

TEST_F(SegmentTest, ReadsVersionOneSegmentsWithoutPeaks) {
  // A version 1 segment is a version 2 one without peaks, its version field set to 1.
  std::string bytes = make_valid("v2.emk", 3000);
  set_at<uint32_t>(bytes, kVersionOffset, 1);
  write_file(tmp_ / "v1.emk", bytes);
  Segment seg(tmp_ / "v1.emk");
  EXPECT_EQ(seg.size(), 3000u);
  EXPECT_EQ(seg.num_peaks(), 0u);
  std::vector<ReferencePeak> got;
  seg.peaks(0, 0xffffffffu, got);
  EXPECT_TRUE(got.empty());
}

TEST_F(SegmentTest, MissingFileThrows) { EXPECT_THROW(Segment(tmp_ / "nope.emk"), Error); }

TEST_F(SegmentTest, WriteIsAtomic) {
  std::vector<uint32_t> pool;
  auto entries = random_entries(1, 1000, pool);
  write_segment(tmp_ / "s.emk", entries, kSettings, 0);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp_.path()))
    names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"s.emk"});
  // Unwritable destination: an Error, not a crash.
  auto more = entries;
  EXPECT_THROW(write_segment(tmp_ / "missing/s.emk", more, kSettings, 0), Error);
}

}  // namespace
}  // namespace earmark
