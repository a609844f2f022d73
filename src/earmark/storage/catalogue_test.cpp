#include "earmark/storage/catalogue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"

namespace earmark {
namespace {

using testutil::TempDir;

Reference make_ref(const std::string& id, uint64_t frame_base, uint32_t frame_count,
                   const std::string& hash) {
  Reference r;
  r.id = id;
  r.title = "Title of " + id;
  r.content_type = ContentType::kMusic;
  r.source_path = "/music/" + id + ".flac";
  r.duration_s = frame_count * 0.01;
  r.content_hash = hash;
  r.added_at = 1700000000 + int64_t(frame_base);
  r.metadata = {{"artist", "Someone"}, {"year", 1999}};
  r.frame_base = frame_base;
  r.frame_count = frame_count;
  return r;
}

std::vector<std::string> ids_of(const std::vector<Reference>& refs) {
  std::vector<std::string> out;
  for (const Reference& r : refs) out.push_back(r.id);
  return out;
}

class CatalogueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tmp_.ok());
    path_ = tmp_ / "catalogue.sqlite";
  }
  TempDir tmp_;
  std::string path_;
};

TEST_F(CatalogueTest, EmptyCatalogue) {
  Catalogue c(path_);
  EXPECT_EQ(c.count(), 0u);
  EXPECT_TRUE(c.list().empty());
  EXPECT_TRUE(c.segments().empty());
  EXPECT_TRUE(c.removed_ranges().empty());
  EXPECT_EQ(c.next_frame_base(), 0u);
  EXPECT_FALSE(c.find_id("x").has_value());
  EXPECT_FALSE(c.find_hash("abc").has_value());
  EXPECT_FALSE(c.meta("anything").has_value());
}

TEST_F(CatalogueTest, InsertAndFindByIdAndHash) {
  Catalogue c(path_);
  Reference a = make_ref("D0042", 0, 3000, "hash-a");
  a.content_type = ContentType::kTrademark;
  a.title = "Jingle \"quoted\" 'title' – ünïcode";
  Reference b = make_ref("track b", 4000, 2000, "hash-b");
  b.content_type = ContentType::kOther;
  c.commit_add({a, b}, "seg-1.emk", 7000);

  EXPECT_EQ(c.count(), 2u);
  EXPECT_EQ(c.next_frame_base(), 7000u);
  EXPECT_EQ(c.segments(), std::vector<std::string>{"seg-1.emk"});

  auto fa = c.find_id("D0042");
  ASSERT_TRUE(fa.has_value());
  EXPECT_EQ(fa->id, "D0042");
  EXPECT_EQ(fa->title, a.title);
  EXPECT_EQ(fa->content_type, ContentType::kTrademark);
  EXPECT_EQ(fa->source_path, a.source_path);
  EXPECT_DOUBLE_EQ(fa->duration_s, a.duration_s);
  EXPECT_EQ(fa->content_hash, "hash-a");
  EXPECT_EQ(fa->added_at, a.added_at);
  EXPECT_EQ(fa->metadata, a.metadata);
  EXPECT_EQ(fa->frame_base, 0u);
  EXPECT_EQ(fa->frame_count, 3000u);
  EXPECT_GT(fa->key, 0);

  auto fb = c.find_hash("hash-b");
  ASSERT_TRUE(fb.has_value());
  EXPECT_EQ(fb->id, "track b");
  EXPECT_EQ(fb->content_type, ContentType::kOther);
  EXPECT_EQ(fb->frame_base, 4000u);

  // Ids are exact: no case folding, no trimming.
  EXPECT_FALSE(c.find_id("d0042").has_value());
  EXPECT_FALSE(c.find_id("D0042 ").has_value());
  EXPECT_FALSE(c.find_hash("hash-").has_value());
}

TEST_F(CatalogueTest, ListIsInTimelineOrder) {
  Catalogue c(path_);
  // Inserted out of timeline order, in two transactions.
  c.commit_add({make_ref("late", 50000, 100, "h3"), make_ref("first", 0, 100, "h1")}, "s1.emk",
               51100);
  c.commit_add({make_ref("middle", 20000, 100, "h2")}, "s0.emk", 51100);
  EXPECT_EQ(ids_of(c.list()), (std::vector<std::string>{"first", "middle", "late"}));
  // Segments are listed by name.
  EXPECT_EQ(c.segments(), (std::vector<std::string>{"s0.emk", "s1.emk"}));
}

TEST_F(CatalogueTest, MetaValues) {
  Catalogue c(path_);
  c.set_meta("k", "v1");
  EXPECT_EQ(c.meta("k").value_or(""), "v1");
  c.set_meta("k", "v2");
  EXPECT_EQ(c.meta("k").value_or(""), "v2");
}

TEST_F(CatalogueTest, RemoveRecordsRangesUntilCompaction) {
  Catalogue c(path_);
  c.commit_add({make_ref("a", 0, 1000, "ha"), make_ref("b", 2000, 500, "hb"),
                make_ref("c", 3500, 700, "hc")},
               "seg-a.emk", 5200);
  auto removed = c.commit_remove({"c", "nope", "a"});
  EXPECT_EQ(ids_of(removed), (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(c.count(), 1u);
  EXPECT_FALSE(c.find_id("a").has_value());
  EXPECT_FALSE(c.find_hash("hc").has_value());
  EXPECT_EQ(ids_of(c.list()), std::vector<std::string>{"b"});

  auto ranges = c.removed_ranges();
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].base, 0u);
  EXPECT_EQ(ranges[0].count, 1000u);
  EXPECT_EQ(ranges[1].base, 3500u);
  EXPECT_EQ(ranges[1].count, 700u);
  // The timeline never goes back: new references are appended after removed ones.
  EXPECT_EQ(c.next_frame_base(), 5200u);

  // Removing nothing that exists changes nothing.
  EXPECT_TRUE(c.commit_remove({"a", "zzz"}).empty());
  EXPECT_EQ(c.removed_ranges().size(), 2u);

  c.commit_compaction({"merged.emk"});
  EXPECT_TRUE(c.removed_ranges().empty());
  EXPECT_EQ(c.segments(), std::vector<std::string>{"merged.emk"});
  EXPECT_EQ(ids_of(c.list()), std::vector<std::string>{"b"});

  c.commit_compaction({});
  EXPECT_TRUE(c.segments().empty());
}

TEST_F(CatalogueTest, DuplicateIdThrowsAndRollsBack) {
  Catalogue c(path_);
  c.commit_add({make_ref("x", 0, 100, "hx")}, "seg-1.emk", 1100);
  const auto before = c.list();

  // The second reference of the batch collides: nothing of the batch may stay.
  EXPECT_THROW(c.commit_add({make_ref("new", 1100, 100, "hn"), make_ref("x", 2200, 100, "hx2")},
                            "seg-2.emk", 3300),
               Error);
  EXPECT_EQ(c.count(), 1u);
  EXPECT_FALSE(c.find_id("new").has_value());
  EXPECT_FALSE(c.find_hash("hx2").has_value());
  EXPECT_EQ(c.segments(), std::vector<std::string>{"seg-1.emk"});
  EXPECT_EQ(c.next_frame_base(), 1100u);
  ASSERT_EQ(c.list().size(), before.size());
  EXPECT_EQ(c.list()[0].content_hash, "hx");

  // Duplicate inside one batch.
  EXPECT_THROW(c.commit_add({make_ref("d", 1100, 10, "h1"), make_ref("d", 2200, 10, "h2")},
                            "seg-3.emk", 3300),
               Error);
  EXPECT_EQ(c.count(), 1u);
  EXPECT_EQ(c.segments(), std::vector<std::string>{"seg-1.emk"});

  // The catalogue is still usable after the failed transactions.
  c.commit_add({make_ref("y", 1100, 100, "hy")}, "seg-4.emk", 2200);
  EXPECT_EQ(ids_of(c.list()), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(c.next_frame_base(), 2200u);
}

TEST_F(CatalogueTest, ContentSurvivesReopen) {
  {
    Catalogue c(path_);
    c.commit_add({make_ref("p", 0, 10, "hp"), make_ref("q", 1010, 10, "hq")}, "seg.emk", 2020);
    c.commit_remove({"p"});
    c.set_meta("landmark_params", "{\"fft_size\":1024}");
  }
  Catalogue c(path_);
  EXPECT_EQ(ids_of(c.list()), std::vector<std::string>{"q"});
  EXPECT_EQ(c.removed_ranges().size(), 1u);
  EXPECT_EQ(c.segments(), std::vector<std::string>{"seg.emk"});
  EXPECT_EQ(c.next_frame_base(), 2020u);
  EXPECT_EQ(c.meta("landmark_params").value_or(""), "{\"fft_size\":1024}");
  auto q = c.find_id("q");
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->metadata["artist"], "Someone");
}

TEST_F(CatalogueTest, TwoConnectionsSeeEachOthersCommits) {
  Catalogue writer(path_);
  Catalogue reader(path_);
  writer.commit_add({make_ref("w", 0, 10, "hw")}, "seg.emk", 1010);
  EXPECT_TRUE(reader.find_id("w").has_value());
  EXPECT_EQ(reader.next_frame_base(), 1010u);
}

TEST_F(CatalogueTest, NotADatabaseThrows) {
  testutil::write_file(path_, std::string(4096, 'g') + "this is not an SQLite file");
  EXPECT_THROW(Catalogue c(path_), Error);
}

TEST_F(CatalogueTest, UnopenablePathThrows) {
  EXPECT_THROW(Catalogue c(tmp_ / "missing-dir/catalogue.sqlite"), Error);
}

TEST(ContentType, ParseAcceptsKnownNamesAndAliases) {
  EXPECT_EQ(parse_content_type("music"), ContentType::kMusic);
  EXPECT_EQ(parse_content_type("trademark"), ContentType::kTrademark);
  EXPECT_EQ(parse_content_type("jingle"), ContentType::kTrademark);
  EXPECT_EQ(parse_content_type("logo"), ContentType::kTrademark);
  EXPECT_EQ(parse_content_type("other"), ContentType::kOther);
}

TEST(ContentType, ParseRejectsEverythingElse) {
  for (const char* bad : {"", "Music", "MUSIC", "song", " music", "music ", "trademarks", "ad"}) {
    EXPECT_THROW(parse_content_type(bad), Error) << "'" << bad << "'";
  }
  try {
    parse_content_type("speech");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("speech"), std::string::npos) << e.what();
  }
}

TEST(ContentType, ToStringRoundTrips) {
  for (ContentType t : {ContentType::kMusic, ContentType::kTrademark, ContentType::kOther})
    EXPECT_EQ(parse_content_type(to_string(t)), t);
  EXPECT_EQ(to_string(ContentType::kTrademark), "trademark");
}

}  // namespace
}  // namespace earmark
