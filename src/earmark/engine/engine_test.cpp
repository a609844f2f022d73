// End to end through the library: index synthetic tracks with index_files, find excerpts and
// distorted excerpts with Scanner, remove, compact, and reopen with other settings.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/engine/database.h"
#include "earmark/engine/indexer.h"
#include "earmark/engine/scanner.h"

namespace earmark {
namespace {

namespace fs = std::filesystem;
using namespace earmark::testutil;

constexpr int kTracks = 6;
constexpr double kTrackSeconds = 30.0;

std::string track_id(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "T%03d", i);
  return buf;
}

std::string describe(const ScanResult& r) {
  std::string s = r.path + (r.ok ? "" : " ERROR " + r.error) + ": " +
                  std::to_string(r.matches.size()) + " match(es)";
  for (const ScanMatch& m : r.matches) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "\n    %s query %.2f-%.2f ref %.2f-%.2f score %.0f speed %.4f pitch %+.2f st",
                  m.ref_id.c_str(), m.query_start, m.query_end, m.ref_start, m.ref_end, m.score,
                  m.speed, m.pitch_semitones);
    s += buf;
  }
  return s;
}

// The best match of `ref`, or nullptr.
const ScanMatch* match_of(const ScanResult& r, const std::string& ref) {
  for (const ScanMatch& m : r.matches)
    if (m.ref_id == ref) return &m;
  return nullptr;
}

// One index of kTracks synthetic tracks shared by the tests of this suite (built once).
class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_TRUE(dir_->ok());
    fs::create_directories(*dir_ / "refs");
    fs::create_directories(*dir_ / "queries");
    tracks_ = new std::vector<std::vector<float>>();
    std::vector<IndexRequest> requests;
    for (int i = 0; i < kTracks; ++i) {
      tracks_->push_back(synth_music(1000 + i, kTrackSeconds));
      IndexRequest r;
      r.id = track_id(i);
      r.path = *dir_ / ("refs/" + track_id(i) + ".wav");
      r.title = "Synthetic track " + std::to_string(i);
      write_wav(r.path, tracks_->back());
      requests.push_back(r);
    }
    auto t0 = std::chrono::steady_clock::now();
    auto db = Database::open(index_dir(), true);
    IndexOptions opts;
    opts.threads = 2;
    summary_ = new IndexSummary(index_files(*db, requests, opts));
    std::printf("[ info ] indexed %d x %.0f s in %.2f s\n", kTracks, kTrackSeconds,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  static void TearDownTestSuite() {
    delete summary_;
    delete tracks_;
    delete dir_;
    summary_ = nullptr;
    tracks_ = nullptr;
    dir_ = nullptr;
  }

  static std::string index_dir() { return *dir_ / "index"; }
  static const std::vector<float>& track(int i) { return (*tracks_)[i]; }

  // Writes a query WAV and returns its path.
  static std::string write_query(const std::string& name, const std::vector<float>& x) {
    std::string path = *dir_ / ("queries/" + name + ".wav");
    write_wav(path, x);
    return path;
  }

  // Runs rubberband with `options` over a query WAV; returns the output's path, or "" on failure.
  static std::string rubberband(const std::string& name, const std::vector<float>& x,
                                const std::string& options) {
    const std::string src = write_query(name + "-src", x);
    const std::string out = *dir_ / ("queries/" + name + ".wav");
    if (run_status("rubberband -q " + options + " " + shell_quote(src) + " " + shell_quote(out) +
                   " >/dev/null 2>&1") != 0)
      return "";
    return out;
  }

  static ScanResult scan(const std::string& dir, const std::string& path) {
    auto db = Database::open(dir, false);
    Scanner scanner(*db);
    ScanResult r = scanner.scan(path);
    std::printf("[ info ] %s\n", describe(r).c_str());
    return r;
  }
  static ScanResult scan(const std::string& path) { return scan(index_dir(), path); }

  // Copy of the shared index for tests that change it.
  static std::string copy_index(const std::string& name) {
    std::string to = *dir_ / name;
    fs::copy(index_dir(), to, fs::copy_options::recursive);
    return to;
  }

  static TempDir* dir_;
  static std::vector<std::vector<float>>* tracks_;
  static IndexSummary* summary_;
};

TempDir* EngineTest::dir_ = nullptr;
std::vector<std::vector<float>>* EngineTest::tracks_ = nullptr;
IndexSummary* EngineTest::summary_ = nullptr;

TEST_F(EngineTest, IndexesAllTracks) {
  ASSERT_NE(summary_, nullptr);
  EXPECT_EQ(summary_->added, size_t(kTracks));
  EXPECT_EQ(summary_->present, 0u);
  EXPECT_EQ(summary_->failed, 0u);
  EXPECT_NEAR(summary_->audio_seconds, kTracks * kTrackSeconds, 0.5);
  ASSERT_EQ(summary_->results.size(), size_t(kTracks));
  for (int i = 0; i < kTracks; ++i) {
    const IndexResult& r = summary_->results[i];
    EXPECT_EQ(r.outcome, IndexOutcome::kAdded) << r.message;
    EXPECT_EQ(r.request.id, track_id(i));
    EXPECT_NEAR(r.duration_s, kTrackSeconds, 0.01);
    EXPECT_GT(r.landmarks, 500u);
  }
  auto db = Database::open(index_dir(), false);
  ASSERT_EQ(db->references().size(), size_t(kTracks));
  for (int i = 0; i < kTracks; ++i) {
    const Reference& ref = db->references()[i];
    EXPECT_EQ(ref.id, track_id(i));  // request order is timeline order
    EXPECT_EQ(ref.title, "Synthetic track " + std::to_string(i));
    EXPECT_EQ(ref.content_type, ContentType::kMusic);
    EXPECT_NEAR(ref.duration_s, kTrackSeconds, 0.01);
    EXPECT_TRUE(fs::path(ref.source_path).is_absolute());
    EXPECT_EQ(ref.content_hash.size(), 32u);
  }
  DatabaseStats s = db->stats();
  EXPECT_EQ(s.references, size_t(kTracks));
  EXPECT_EQ(s.segments, 1u);
  EXPECT_GT(s.entries, 1000u);
  EXPECT_NEAR(s.audio_seconds, kTracks * kTrackSeconds, 0.5);
  EXPECT_EQ(s.removed_pending, 0u);
  EXPECT_TRUE(db->verify().empty());
}

TEST_F(EngineTest, ReAddingTheSameFileIsAlreadyPresent) {
  const std::string dir = copy_index("index-readd");
  auto db = Database::open(dir, false);
  IndexRequest again;
  again.id = track_id(2);
  again.path = *dir_ / ("refs/" + track_id(2) + ".wav");
  // The same audio under another id and in another container is the same audio too.
  std::string flac = *dir_ / "queries/copy-of-2.flac";
  ASSERT_TRUE(ffmpeg_convert(again.path, flac) || !have_tool("ffmpeg"));
  IndexRequest other_id;
  other_id.id = "ANOTHER";
  other_id.path = have_tool("ffmpeg") ? flac : again.path;
  IndexSummary s = index_files(*db, {again, other_id});
  ASSERT_EQ(s.results.size(), 2u);
  EXPECT_EQ(s.results[0].outcome, IndexOutcome::kAlreadyPresent);
  EXPECT_EQ(s.results[0].message, "already indexed");
  EXPECT_EQ(s.results[1].outcome, IndexOutcome::kAlreadyPresent);
  EXPECT_NE(s.results[1].message.find(track_id(2)), std::string::npos) << s.results[1].message;
  EXPECT_EQ(s.added, 0u);
  EXPECT_EQ(s.present, 2u);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(db->references().size(), size_t(kTracks));
  EXPECT_EQ(db->stats().segments, 1u) << "nothing added: no new segment";
}

TEST_F(EngineTest, ReusedIdWithOtherAudioFails) {
  const std::string dir = copy_index("index-reuse");
  auto db = Database::open(dir, false);
  const std::string path = *dir_ / "queries/other-audio.wav";
  write_wav(path, synth_music(4242, 10.0));
  IndexRequest r;
  r.id = track_id(0);
  r.path = path;
  IndexSummary s = index_files(*db, {r});
  ASSERT_EQ(s.results.size(), 1u);
  EXPECT_EQ(s.results[0].outcome, IndexOutcome::kFailed);
  EXPECT_NE(s.results[0].message.find(track_id(0)), std::string::npos) << s.results[0].message;
  EXPECT_EQ(s.failed, 1u);
  auto ref = db->catalogue().find_id(track_id(0));
  ASSERT_TRUE(ref.has_value());
  EXPECT_NEAR(ref->duration_s, kTrackSeconds, 0.01) << "the original reference is untouched";
  EXPECT_EQ(db->references().size(), size_t(kTracks));

  // Two new files claiming one id in one run: the second fails, the first is added.
  const std::string p1 = *dir_ / "queries/dup-id-1.wav", p2 = *dir_ / "queries/dup-id-2.wav";
  write_wav(p1, synth_music(5151, 8.0));
  write_wav(p2, synth_music(5252, 8.0));
  IndexRequest a, b;
  a.id = b.id = "DUP";
  a.path = p1;
  b.path = p2;
  s = index_files(*db, {a, b});
  ASSERT_EQ(s.results.size(), 2u);
  EXPECT_EQ(s.results[0].outcome, IndexOutcome::kAdded);
  EXPECT_EQ(s.results[1].outcome, IndexOutcome::kFailed);
  EXPECT_EQ(db->references().size(), size_t(kTracks + 1));
}

TEST_F(EngineTest, BadFilesFailWithoutStoppingTheRun) {
  const std::string dir = copy_index("index-bad");
  auto db = Database::open(dir, false);
  const std::string empty = *dir_ / "queries/empty.wav", text = *dir_ / "queries/notes.txt";
  write_file(empty, "");
  write_file(text, "just some text, not audio\n");
  const std::string tiny = *dir_ / "queries/tiny.wav";
  write_wav(tiny, slice(synth_music(77, 1.0), 0, 0.1));
  const std::string good = *dir_ / "queries/new-good.wav";
  write_wav(good, synth_music(7777, 12.0));
  std::vector<IndexRequest> reqs(5);
  reqs[0].path = *dir_ / "queries/missing.wav";
  reqs[1].path = empty;
  reqs[2].path = text;
  reqs[3].path = tiny;
  reqs[4].path = good;
  IndexSummary s = index_files(*db, reqs);
  ASSERT_EQ(s.results.size(), 5u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(s.results[i].outcome, IndexOutcome::kFailed) << reqs[i].path;
    EXPECT_FALSE(s.results[i].message.empty());
  }
  EXPECT_EQ(s.results[4].outcome, IndexOutcome::kAdded) << s.results[4].message;
  EXPECT_EQ(s.results[4].request.id, "new-good") << "default id: the file name without extension";
  EXPECT_EQ(s.failed, 4u);
  EXPECT_EQ(s.added, 1u);
  EXPECT_TRUE(db->catalogue().find_id("new-good").has_value());
}

// (a) a clean excerpt.
TEST_F(EngineTest, FindsCleanExcerpt) {
  const double start = 11.3;
  ScanResult r = scan(write_query("clean-T001", slice(track(1), start, 8.0)));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_NEAR(r.duration_s, 8.0, 0.01);
  ASSERT_FALSE(r.matches.empty()) << describe(r);
  const ScanMatch& m = r.matches[0];
  EXPECT_EQ(m.ref_id, track_id(1)) << describe(r);
  EXPECT_EQ(m.title, "Synthetic track 1");
  EXPECT_EQ(m.content_type, ContentType::kMusic);
  EXPECT_EQ(r.matches.size(), 1u) << describe(r);
  // (query_start, ref_start) is a pair of corresponding times.
  EXPECT_NEAR(m.ref_start - m.query_start, start, 0.5) << describe(r);
  EXPECT_NEAR(m.query_start, 0.0, 1.0) << describe(r);
  EXPECT_NEAR(m.ref_start, start, 1.0) << describe(r);
  EXPECT_GT(m.query_end - m.query_start, 5.0) << describe(r);
  EXPECT_NEAR(m.speed, 1.0, 0.01);
  EXPECT_NEAR(m.pitch_semitones, 0.0, 0.3);
  EXPECT_GE(m.score, ScanOptions().min_score_music);
}

// (b) the excerpt as a 64 kbit/s mp3.
TEST_F(EngineTest, FindsMp3Excerpt) {
  if (!have_tool("ffmpeg")) GTEST_SKIP() << "ffmpeg not installed";
  const double start = 4.0;
  const std::string wav = write_query("mp3-src-T003", slice(track(3), start, 8.0));
  const std::string mp3 = *dir_ / "queries/T003.mp3";
  ASSERT_TRUE(ffmpeg_convert(wav, mp3, "-c:a libmp3lame -b:a 64k"));
  ScanResult r = scan(mp3);
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_FALSE(r.matches.empty()) << describe(r);
  const ScanMatch& m = r.matches[0];
  EXPECT_EQ(m.ref_id, track_id(3)) << describe(r);
  // mp3 encoders add a short priming delay: allow for it.
  EXPECT_NEAR(m.ref_start - m.query_start, start, 0.5) << describe(r);
}

// (c) two excerpts of different tracks between stretches of unrelated noise.
TEST_F(EngineTest, FindsTwoExcerptsAmongNoise) {
  std::vector<float> q = white_noise(1, 5 * kRate, 0.1);
  append(q, slice(track(0), 12.0, 8.0));
  append(q, white_noise(2, 5 * kRate, 0.1));
  append(q, slice(track(4), 3.0, 8.0));
  ScanResult r = scan(write_query("two-excerpts", q));
  ASSERT_TRUE(r.ok) << r.error;
  const ScanMatch* a = match_of(r, track_id(0));
  const ScanMatch* b = match_of(r, track_id(4));
  ASSERT_NE(a, nullptr) << describe(r);
  ASSERT_NE(b, nullptr) << describe(r);
  EXPECT_EQ(r.matches.size(), 2u) << describe(r);
  EXPECT_NEAR(a->query_start, 5.0, 0.5) << describe(r);
  EXPECT_NEAR(a->ref_start, 12.0, 0.5) << describe(r);
  EXPECT_NEAR(b->query_start, 18.0, 0.5) << describe(r);
  EXPECT_NEAR(b->ref_start, 3.0, 0.5) << describe(r);
  EXPECT_LT(a->query_end, 13.5) << describe(r);
  EXPECT_LT(b->query_end, 26.5) << describe(r);
}

// (d) tempo x1.05 (duration / 1.05) with rubberband: 1.05 reference seconds per query second.
TEST_F(EngineTest, FindsTempoChangedExcerpt) {
  if (!have_tool("rubberband")) GTEST_SKIP() << "rubberband not installed";
  const double start = 8.0;
  const std::string out = rubberband("tempo-T002", slice(track(2), start, 10.0), "-t 0.952381");
  ASSERT_FALSE(out.empty()) << "rubberband failed";
  ScanResult r = scan(out);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_NEAR(r.duration_s, 10.0 / 1.05, 0.1);
  ASSERT_FALSE(r.matches.empty()) << describe(r);
  const ScanMatch& m = r.matches[0];
  EXPECT_EQ(m.ref_id, track_id(2)) << describe(r);
  EXPECT_NEAR(m.speed, 1.05, 0.02) << describe(r);
  // Corresponding times: ref = start + speed * query.
  EXPECT_NEAR(m.ref_start, start + 1.05 * m.query_start, 0.5) << describe(r);
  EXPECT_NEAR(m.pitch_semitones, 0.0, 0.5) << describe(r);
}

// (e) pitch +2 semitones with rubberband (tempo unchanged).
TEST_F(EngineTest, FindsPitchShiftedExcerpt) {
  if (!have_tool("rubberband")) GTEST_SKIP() << "rubberband not installed";
  const double start = 15.0;
  const std::string out = rubberband("pitch-T005", slice(track(5), start, 10.0), "-p 2");
  ASSERT_FALSE(out.empty()) << "rubberband failed";
  ScanResult r = scan(out);
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_FALSE(r.matches.empty()) << describe(r);
  const ScanMatch& m = r.matches[0];
  EXPECT_EQ(m.ref_id, track_id(5)) << describe(r);
  EXPECT_NEAR(m.pitch_semitones, 2.0, 0.5) << describe(r);
  EXPECT_NEAR(m.pitch_factor, std::pow(2.0, m.pitch_semitones / 12.0), 1e-6);
  EXPECT_NEAR(m.speed, 1.0, 0.02) << describe(r);
  EXPECT_NEAR(m.ref_start - m.query_start, start, 0.5) << describe(r);
}

// (f) music that is not in the index.
TEST_F(EngineTest, UnrelatedTrackIsNotFound) {
  for (uint64_t seed : {9001u, 9002u}) {
    ScanResult r = scan(write_query("unrelated-" + std::to_string(seed), synth_music(seed, 20.0)));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_TRUE(r.matches.empty()) << describe(r);
  }
  ScanResult r = scan(write_query("noise", white_noise(3, 10 * kRate, 0.2)));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.matches.empty()) << describe(r);
}

// Many unrelated queries: at most one false positive, and never a "match" whose evidence all
// sits at one instant of the query (query_end - query_start near 0): a real match is a line
// through many query frames.
TEST_F(EngineTest, UnrelatedQueriesSweep) {
  auto db = Database::open(index_dir(), false);
  Scanner scanner(*db);
  int false_positives = 0;
  const int queries = 24;
  for (int i = 0; i < queries; ++i) {
    const std::string path = write_query("sweep", synth_music(9100 + i, 15.0));
    ScanResult r = scanner.scan(path);
    ASSERT_TRUE(r.ok) << r.error;
    if (r.matches.empty()) continue;
    ++false_positives;
    std::printf("[ info ] false positive for unrelated seed %d: %s\n", 9100 + i,
                describe(r).c_str());
    for (const ScanMatch& m : r.matches)
      EXPECT_GE(m.query_end - m.query_start, 0.5)
          << "seed " << 9100 + i << ": a match resting on a single instant of the query\n"
          << describe(r);
  }
  std::printf("[ info ] %d false positive(s) in %d unrelated queries\n", false_positives, queries);
  EXPECT_LE(false_positives, 1);
}

// (g) the excerpt under white noise at 20 dB SNR.
TEST_F(EngineTest, FindsExcerptUnderNoise) {
  const double start = 17.0;
  ScanResult r = scan(write_query("noisy-T002", add_noise(slice(track(2), start, 8.0), 20.0, 5)));
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_FALSE(r.matches.empty()) << describe(r);
  EXPECT_EQ(r.matches[0].ref_id, track_id(2)) << describe(r);
  EXPECT_NEAR(r.matches[0].ref_start - r.matches[0].query_start, start, 0.5) << describe(r);
}

TEST_F(EngineTest, BadQueriesAreReportedNotThrown) {
  auto db = Database::open(index_dir(), false);
  Scanner scanner(*db);
  const std::string text = *dir_ / "queries/readme.txt";
  write_file(text, "not audio");
  for (const std::string& p : {std::string(*dir_ / "queries/absent.wav"), text}) {
    ScanResult r;
    ASSERT_NO_THROW(r = scanner.scan(p));
    EXPECT_FALSE(r.ok) << p;
    EXPECT_FALSE(r.error.empty());
    EXPECT_NE(r.error.find(fs::path(p).filename().string()), std::string::npos) << r.error;
    EXPECT_TRUE(r.matches.empty());
    nlohmann::json j = to_json(r);
    EXPECT_EQ(j["query"], p);
    EXPECT_TRUE(j.contains("error"));
  }
}

TEST_F(EngineTest, ScanOptionsAreValidated) {
  auto db = Database::open(index_dir(), false);
  ScanOptions o;
  o.max_matches = 0;
  EXPECT_THROW(Scanner(*db, o), Error);
  o = ScanOptions();
  o.min_score_music = -1;
  EXPECT_THROW(Scanner(*db, o), Error);
  o = ScanOptions();
  o.min_score_trademark = std::nan("");
  EXPECT_THROW(Scanner(*db, o), Error);
  o = ScanOptions();
  o.threshold_growth = -0.5;
  EXPECT_THROW(Scanner(*db, o), Error);
  o = ScanOptions();
  o.constellation.min_score = -1;
  EXPECT_THROW(Scanner(*db, o), Error);
  o = ScanOptions();
  o.logo_agreement = 0.5;
  EXPECT_THROW(Scanner(*db, o), Error);
}

// The music threshold follows the query's length (the chances a window gives a random alignment),
// counted from 1 s up to one analysis window; trademarks keep theirs.
TEST_F(EngineTest, MusicThresholdGrowsWithQueryLength) {
  auto db = Database::open(index_dir(), false);
  const ScanOptions o;
  const Scanner scanner(*db, o);
  EXPECT_NEAR(scanner.min_score(ContentType::kMusic, 3.0), o.min_score_music, 1e-9);
  EXPECT_NEAR(scanner.min_score(ContentType::kOther, 3.0), o.min_score_other, 1e-9);
  EXPECT_NEAR(scanner.min_score(ContentType::kMusic, 30.0),
              o.min_score_music + o.threshold_growth * std::log(20.0 / 3.0), 1e-9);
  EXPECT_LT(scanner.min_score(ContentType::kMusic, 1.0),
            scanner.min_score(ContentType::kMusic, 10.0));
  EXPECT_EQ(scanner.min_score(ContentType::kMusic, 0.2),
            scanner.min_score(ContentType::kMusic, 1.0));
  EXPECT_EQ(scanner.min_score(ContentType::kMusic, 3600.0),
            scanner.min_score(ContentType::kMusic, 20.0));
  EXPECT_EQ(scanner.min_score(ContentType::kTrademark, 1.0), o.min_score_trademark);
  EXPECT_EQ(scanner.min_score(ContentType::kTrademark, 20.0), o.min_score_trademark);
  ScanOptions flat;
  flat.threshold_growth = 0;
  EXPECT_EQ(Scanner(*db, flat).min_score(ContentType::kMusic, 12.0), flat.min_score_music);
}

TEST_F(EngineTest, RemoveThenCompact) {
  const std::string dir = copy_index("index-remove");
  const std::string q_removed = write_query("rm-T001", slice(track(1), 5.0, 8.0));
  const std::string q_kept0 = write_query("rm-T000", slice(track(0), 20.0, 8.0));
  const std::string q_kept4 = write_query("rm-T004", slice(track(4), 1.0, 8.0));
  {
    auto db = Database::open(dir, false);
    auto removed = db->remove({track_id(1), "NOPE"});
    ASSERT_EQ(removed.size(), 1u);
    EXPECT_EQ(removed[0].id, track_id(1));
    EXPECT_EQ(db->references().size(), size_t(kTracks - 1));
    EXPECT_EQ(db->stats().removed_pending, 1u);
  }
  {
    ScanResult r = scan(dir, q_removed);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(match_of(r, track_id(1)), nullptr) << describe(r);
    EXPECT_TRUE(r.matches.empty()) << describe(r);
  }
  // A second segment, so that compaction really merges.
  {
    auto db = Database::open(dir, false);
    const std::string extra = *dir_ / "queries/extra-ref.wav";
    write_wav(extra, synth_music(3333, 20.0));
    IndexRequest req;
    req.id = "EXTRA";
    req.path = extra;
    IndexSummary s = index_files(*db, {req});
    ASSERT_EQ(s.added, 1u);
    EXPECT_EQ(db->stats().segments, 2u);
  }
  size_t entries_before = 0;
  {
    auto db = Database::open(dir, false);
    entries_before = db->stats().entries;
    // The reference peaks (for verifying alignments) of the live references, per reference.
    auto live_peaks = [&db] {
      std::vector<size_t> counts;
      for (const Reference& r : db->references()) {
        std::vector<ReferencePeak> peaks;
        db->index().peaks(uint32_t(r.frame_base), uint32_t(r.frame_base + r.frame_count), peaks);
        counts.push_back(peaks.size());
      }
      return counts;
    };
    auto stored_peaks = [&db] {
      size_t n = 0;
      for (const auto& seg : db->index().segments()) n += seg->num_peaks();
      return n;
    };
    const std::vector<size_t> peaks_before = live_peaks();
    size_t live_total = 0;
    for (size_t n : peaks_before) {
      EXPECT_GT(n, 100u);
      live_total += n;
    }
    EXPECT_GT(stored_peaks(), live_total) << "the removed reference's peaks are still stored";
    db->compact();
    EXPECT_EQ(live_peaks(), peaks_before);
    EXPECT_EQ(stored_peaks(), live_total) << "compaction drops the removed reference's peaks";
    DatabaseStats s = db->stats();
    EXPECT_EQ(s.segments, 1u);
    EXPECT_EQ(s.removed_pending, 0u);
    EXPECT_EQ(s.references, size_t(kTracks));  // 5 left + EXTRA
    EXPECT_LT(s.entries, entries_before) << "the removed reference's landmarks are dropped";
    EXPECT_TRUE(db->verify().empty());
    // Only the live segment remains on disk.
    size_t files = 0;
    for (const auto& e : fs::directory_iterator(fs::path(dir) / "segments")) {
      (void)e;
      ++files;
    }
    EXPECT_EQ(files, 1u);
  }
  for (const auto& [q, id] : std::vector<std::pair<std::string, std::string>>{
           {q_kept0, track_id(0)}, {q_kept4, track_id(4)}}) {
    ScanResult r = scan(dir, q);
    ASSERT_TRUE(r.ok);
    ASSERT_FALSE(r.matches.empty()) << describe(r);
    EXPECT_EQ(r.matches[0].ref_id, id) << describe(r);
  }
  {
    ScanResult r = scan(dir, q_removed);
    EXPECT_TRUE(r.matches.empty()) << describe(r);
  }
  // The removed id can be used again, for the same audio.
  {
    auto db = Database::open(dir, false);
    IndexRequest req;
    req.id = track_id(1);
    req.path = *dir_ / ("refs/" + track_id(1) + ".wav");
    IndexSummary s = index_files(*db, {req});
    EXPECT_EQ(s.added, 1u);
  }
  {
    ScanResult r = scan(dir, q_removed);
    ASSERT_FALSE(r.matches.empty()) << describe(r);
    EXPECT_EQ(r.matches[0].ref_id, track_id(1));
    EXPECT_NEAR(r.matches[0].ref_start - r.matches[0].query_start, 5.0, 0.5) << describe(r);
  }
}

TEST_F(EngineTest, CompactOfEmptiedIndex) {
  const std::string dir = copy_index("index-empty");
  auto db = Database::open(dir, false);
  std::vector<std::string> all;
  for (int i = 0; i < kTracks; ++i) all.push_back(track_id(i));
  EXPECT_EQ(db->remove(all).size(), size_t(kTracks));
  db->compact();
  EXPECT_EQ(db->stats().references, 0u);
  EXPECT_EQ(db->stats().entries, 0u);
  ScanResult r = scan(dir, write_query("after-empty", slice(track(0), 0, 8)));
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.matches.empty());
}

TEST_F(EngineTest, OtherLandmarkSettingsAreRefused) {
  LandmarkParams other;
  other.fft_size = 2048;
  try {
    Database::open(index_dir(), false, &other);
    FAIL() << "opened an index with other hash settings";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fft_size"), std::string::npos) << e.what();
  }
  try {
    Database::open(index_dir(), true, &other);
    FAIL() << "opened (create) an index with other hash settings";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fft_size"), std::string::npos) << e.what();
  }
  // Density settings are not part of what a hash means: accepted.
  LandmarkParams density;
  density.peaks_per_second = 30;
  EXPECT_NO_THROW(Database::open(index_dir(), false, &density));
  LandmarkParams same;
  EXPECT_NO_THROW(Database::open(index_dir(), false, &same));
}

TEST(ShortReference, SoundLogoOverMusicIsFound) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string logo_path = dir / "logo.wav", song_path = dir / "song.wav";
  const auto logo = notification_sound();
  write_wav(logo_path, logo);
  write_wav(song_path, synth_music(3001, 30.0));
  {
    auto db = Database::open(dir / "index", true);
    IndexRequest song, mark;
    song.id = "S1";
    song.path = song_path;
    mark.id = "L1";
    mark.path = logo_path;
    mark.content_type = ContentType::kTrademark;
    auto summary = index_files(*db, {song, mark}, IndexOptions());
    ASSERT_EQ(summary.failed, 0u);
  }
  // Unrelated music with the logo 6 dB above it, from 4 s.
  auto background = synth_music(3002, 10.0);
  const size_t at = 4 * 16000;
  std::vector<float> under(background.begin() + at, background.begin() + at + logo.size());
  const double gain = rms(logo) / std::max(1e-9, rms(under)) / std::pow(10.0, 6.0 / 20.0);
  std::vector<float> query(background.size());
  for (size_t i = 0; i < query.size(); ++i) query[i] = float(background[i] * gain);
  std::vector<float> without = query;
  for (size_t i = 0; i < logo.size(); ++i) query[at + i] += logo[i];
  write_wav(dir / "with.wav", query);
  write_wav(dir / "without.wav", without);

  auto db = Database::open(dir / "index", false);
  Scanner scanner(*db);
  ScanResult r = scanner.scan(dir / "with.wav");
  ASSERT_TRUE(r.ok) << r.error;
  const ScanMatch* m = match_of(r, "L1");
  ASSERT_NE(m, nullptr) << describe(r);
  EXPECT_EQ(m->content_type, ContentType::kTrademark);
  EXPECT_NEAR(m->query_start - m->ref_start, 4.0, 0.1) << describe(r);
  ScanResult alone = scanner.scan(logo_path);
  EXPECT_NE(match_of(alone, "L1"), nullptr) << describe(alone);
  ScanResult none = scanner.scan(dir / "without.wav");
  ASSERT_TRUE(none.ok) << none.error;
  EXPECT_TRUE(none.matches.empty()) << describe(none);
}

TEST(ShortReference, SoundLogosKeepATemplateThatLeavesWithThem) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  write_wav(dir / "logo.wav", notification_sound());
  write_wav(dir / "song.wav", synth_music(3011, 30.0));
  auto db = Database::open(dir / "index", true);
  IndexRequest song, mark;
  song.id = "S1";
  song.path = dir / "song.wav";
  mark.id = "L1";
  mark.path = dir / "logo.wav";
  mark.content_type = ContentType::kTrademark;
  ASSERT_EQ(index_files(*db, {song, mark}, IndexOptions()).failed, 0u);
  ASSERT_EQ(db->logo_templates().size(), 1u) << "only the logo gets a template";
  EXPECT_EQ(db->references().at(db->logo_references().at(0)).id, "L1");
  // Reopened from disk, the template is the same.
  auto again = Database::open(dir / "index", false);
  ASSERT_EQ(again->logo_templates().size(), 1u);
  EXPECT_EQ(again->logo_templates()[0].serialise(), db->logo_templates()[0].serialise());
  // The logo itself is found by its template and constellation too; without them only by its
  // landmarks.
  ScanResult r = Scanner(*again).scan(dir / "logo.wav");
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_FALSE(r.matches.empty()) << describe(r);
  EXPECT_EQ(r.matches[0].ref_id, "L1");
  ScanOptions landmarks_only;
  landmarks_only.logo_templates = false;
  landmarks_only.logo_constellations = false;
  ScanResult by_landmarks = Scanner(*again, landmarks_only).scan(dir / "logo.wav");
  for (const ScanMatch& m : by_landmarks.matches) EXPECT_EQ(m.stage, "landmark");
  // Found by all three, the logo is reported once, by the landmark stage, with the other stages'
  // evidence and the largest of the scores on the landmark scale.
  const ScanMatch* both = match_of(r, "L1");
  const ScanMatch* landmark = match_of(by_landmarks, "L1");
  ASSERT_NE(landmark, nullptr) << describe(by_landmarks);
  EXPECT_EQ(both->stage, "landmark");
  EXPECT_GT(both->correlation, 0.5);
  EXPECT_GT(both->votes, 10);
  const ScanOptions defaults;
  const double t = both->template_score / defaults.logo.min_score;
  const double c = both->constellation_score / defaults.constellation.min_score;
  const double strength = std::max({t, c, (t + c) / defaults.logo_agreement});
  EXPECT_NEAR(both->score, std::max(landmark->score, strength * defaults.min_score_trademark),
              1e-9);
  // Without its landmark stage's view, a logo stage's match keeps its own scale in the evidence.
  ScanOptions strict_landmarks;
  strict_landmarks.min_score_trademark = 1e5;
  ScanResult by_template = Scanner(*again, strict_landmarks).scan(dir / "logo.wav");
  ASSERT_NE(match_of(by_template, "L1"), nullptr) << describe(by_template);
  EXPECT_EQ(match_of(by_template, "L1")->stage, "template");
  ScanOptions constellation_only = strict_landmarks;
  constellation_only.logo_templates = false;
  ScanResult by_peaks = Scanner(*again, constellation_only).scan(dir / "logo.wav");
  const ScanMatch* peaks = match_of(by_peaks, "L1");
  ASSERT_NE(peaks, nullptr) << describe(by_peaks);
  EXPECT_EQ(peaks->stage, "constellation");
  EXPECT_NEAR(peaks->query_start, peaks->ref_start, 0.02);
  EXPECT_EQ(peaks->template_score, 0.0);

  // Two stages that each fall short of their own threshold still report an occurrence they agree
  // on, once their shares of their thresholds add up to the agreement threshold, and not before.
  auto with_shares = [&](double share) {
    ScanOptions o = strict_landmarks;
    o.logo.min_score = both->template_score / share;
    o.constellation.min_score = both->constellation_score / share;
    return Scanner(*again, o).scan(dir / "logo.wav");
  };
  ScanResult agreeing = with_shares(0.75);  // 1.5 together
  const ScanMatch* joint = match_of(agreeing, "L1");
  ASSERT_NE(joint, nullptr) << describe(agreeing);
  // On the landmark scale of a trademark, whose threshold here is strict_landmarks'.
  const double joint_score = 1.5 / defaults.logo_agreement * strict_landmarks.min_score_trademark;
  EXPECT_NEAR(joint->score / joint_score, 1.0, 1e-6);
  ScanResult short_of_it = with_shares(0.65);  // 1.3 together
  EXPECT_EQ(match_of(short_of_it, "L1"), nullptr) << describe(short_of_it);
  again->remove({"L1"});
  EXPECT_TRUE(again->logo_templates().empty());
  EXPECT_TRUE(Database::open(dir / "index", false)->logo_templates().empty());
}

TEST(Database, OpenWithoutIndexFailsClearly) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  try {
    Database::open(tmp / "nothing-here", false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing-here"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp / "nothing-here")) << "a failed open must not create the index";
  write_file(tmp / "a-file", "x");
  EXPECT_THROW(Database::open(tmp / "a-file", true), Error);
  LandmarkParams bad;
  bad.hop = 0;
  EXPECT_THROW(Database::open(tmp / "new-index", true, &bad), Error);
}

TEST(Database, NewIndexKeepsItsSettings) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  LandmarkParams p;
  p.fft_size = 512;
  p.hop = 128;
  { auto db = Database::open(tmp / "idx", true, &p); }
  auto db = Database::open(tmp / "idx", false);
  EXPECT_EQ(db->params().fft_size, 512);
  EXPECT_EQ(db->params().hop, 128);
  EXPECT_EQ(db->stats().references, 0u);
  EXPECT_EQ(db->stats().segments, 0u);
}

TEST(Database, DamagedSegmentIsDetected) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  const std::string wav = tmp / "t.wav";
  write_wav(wav, synth_music(31337, 10.0));
  {
    auto db = Database::open(tmp / "idx", true);
    IndexRequest r;
    r.path = wav;
    ASSERT_EQ(index_files(*db, {r}).added, 1u);
  }
  std::string seg;
  for (const auto& e : fs::directory_iterator(tmp / "idx/segments")) seg = e.path().string();
  ASSERT_FALSE(seg.empty());
  std::string bytes = read_file(seg);
  bytes[bytes.size() - 10] ^= 0x55;  // a payload byte
  write_file(seg, bytes);
  auto db = Database::open(tmp / "idx", false);
  auto bad = db->verify();
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(fs::path(bad[0]).filename(), fs::path(seg).filename());
  // Truncated: the index cannot be opened, with an earmark::Error naming the segment.
  write_file(seg, bytes.substr(0, bytes.size() / 2));
  try {
    Database::open(tmp / "idx", false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fs::path(seg).filename().string()), std::string::npos)
        << e.what();
  }
}

// A failure while committing a batch (here: the segment directory has become a file) must come
// back to the caller as an earmark::Error, with the worker threads stopped, not terminate the
// process. Run in a forked child ("fast" death test style: the child shares this test's temporary
// directory, which the parent removes) so that a crash cannot take the test binary down.
TEST(IndexFilesDeathTest, CommitFailureMidRunIsAnErrorNotACrash) {
  GTEST_FLAG_SET(death_test_style, "fast");
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  std::vector<IndexRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    IndexRequest r;
    r.path = tmp / ("t" + std::to_string(i) + ".wav");
    write_wav(r.path, synth_music(600 + i, 4.0));
    reqs.push_back(r);
  }
  const std::string dir = tmp / "idx";
  EXPECT_EXIT(
      {
        int code = 1;
        try {
          auto db = Database::open(dir, true);
          IndexOptions opts;
          opts.threads = 2;
          opts.batch_entries = 1;  // commit after every file
          bool sabotaged = false;
          opts.progress = [&](size_t, size_t, const IndexResult&) {
            if (sabotaged) return;
            sabotaged = true;
            std::error_code ec;
            fs::remove_all(fs::path(dir) / "segments", ec);
            write_file((fs::path(dir) / "segments").string(), "not a directory");
          };
          index_files(*db, reqs, opts);
          code = 2;  // no error at all
        } catch (const Error&) {
          code = 0;
        }
        std::fflush(stdout);
        std::_Exit(code);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace earmark
