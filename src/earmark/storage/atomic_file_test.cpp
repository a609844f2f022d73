#include "earmark/storage/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"

namespace earmark {
namespace {

namespace fs = std::filesystem;
using testutil::read_file;
using testutil::TempDir;
using testutil::write_file;

// Names of the entries of a directory, sorted.
std::vector<std::string> entries_of(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string pattern_bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = char((i * 131 + 7) & 0xff);
  return s;
}

TEST(AtomicFileWriter, CommitMakesTheWholeFileAppear) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  const std::string path = tmp / "data.bin";
  const std::string payload = pattern_bytes(300000);
  {
    AtomicFileWriter w(path);
    w.write(payload.data(), 1000);
    w.write(payload.data() + 1000, payload.size() - 1000);
    EXPECT_EQ(w.bytes_written(), payload.size());
    // Nothing under the final name before the commit, only a temporary file.
    EXPECT_FALSE(fs::exists(path));
    auto names = entries_of(tmp.path());
    ASSERT_EQ(names.size(), 1u);
    EXPECT_NE(names[0].find("data.bin.tmp."), std::string::npos) << names[0];
    w.commit();
    EXPECT_EQ(read_file(path), payload);
  }
  // After commit and destruction: only the target, complete.
  EXPECT_EQ(entries_of(tmp.path()), std::vector<std::string>{"data.bin"});
  EXPECT_EQ(read_file(path), payload);
}

TEST(AtomicFileWriter, CommitReplacesAnExistingFile) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  const std::string path = tmp / "f";
  write_file(path, "old contents that are longer than the new ones");
  {
    AtomicFileWriter w(path);
    w.write("new", 3);
    EXPECT_EQ(read_file(path), "old contents that are longer than the new ones");
    w.commit();
  }
  EXPECT_EQ(read_file(path), "new");
  EXPECT_EQ(entries_of(tmp.path()), std::vector<std::string>{"f"});
}

TEST(AtomicFileWriter, EmptyFileCanBeCommitted) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  {
    AtomicFileWriter w(tmp / "empty");
    w.commit();
  }
  EXPECT_TRUE(fs::exists(tmp / "empty"));
  EXPECT_EQ(fs::file_size(tmp / "empty"), 0u);
}

TEST(AtomicFileWriter, DestructionWithoutCommitKeepsOldFileAndRemovesTemporary) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  const std::string path = tmp / "keep.dat";
  write_file(path, "original");
  {
    AtomicFileWriter w(path);
    const std::string junk = pattern_bytes(100000);
    w.write(junk.data(), junk.size());
  }  // abandoned
  EXPECT_EQ(read_file(path), "original");
  EXPECT_EQ(entries_of(tmp.path()), std::vector<std::string>{"keep.dat"});

  // Same when no file existed before: nothing at all is left behind.
  {
    AtomicFileWriter w(tmp / "new.dat");
    w.write("x", 1);
  }
  EXPECT_FALSE(fs::exists(tmp / "new.dat"));
  EXPECT_EQ(entries_of(tmp.path()), std::vector<std::string>{"keep.dat"});
}

TEST(AtomicFileWriter, ExceptionBeforeCommitLeavesNothing) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  const std::string path = tmp / "target";
  write_file(path, "v1");
  try {
    AtomicFileWriter w(path);
    w.write("v2-partial", 10);
    throw std::runtime_error("simulated failure while writing");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(read_file(path), "v1");
  EXPECT_EQ(entries_of(tmp.path()), std::vector<std::string>{"target"});
}

TEST(AtomicFileWriter, ErrorOnMissingOrUnwritableDirectory) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  // Parent directory does not exist.
  try {
    AtomicFileWriter w(tmp / "no/such/dir/file");
    FAIL() << "expected earmark::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir/file"), std::string::npos) << e.what();
  }
  // Parent is a regular file.
  write_file(tmp / "plain", "x");
  EXPECT_THROW(AtomicFileWriter(tmp / "plain/file"), Error);
  // A directory without write permission (root ignores permissions: then only the above apply).
  if (::geteuid() != 0) {
    fs::create_directory(tmp / "ro");
    fs::permissions(tmp / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_THROW(AtomicFileWriter(tmp / "ro/file"), Error);
    fs::permissions(tmp / "ro", fs::perms::owner_all);
    EXPECT_TRUE(fs::is_empty(tmp / "ro"));
  }
}

TEST(MappedFile, ReadsBackWhatWasWritten) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  const std::string path = tmp / "m.bin";
  const std::string payload = pattern_bytes(123457);
  {
    AtomicFileWriter w(path);
    w.write(payload.data(), payload.size());
    w.commit();
  }
  MappedFile m(path);
  EXPECT_EQ(m.path(), path);
  ASSERT_EQ(m.size(), payload.size());
  ASSERT_NE(m.data(), nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.data()), m.size()), payload);
}

TEST(MappedFile, KeepsItsViewWhenTheFileIsReplaced) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  const std::string path = tmp / "seg";
  write_file(path, "first version");
  MappedFile m(path);
  {
    AtomicFileWriter w(path);
    w.write("second", 6);
    w.commit();
  }
  // A reader that mapped the old file keeps reading the old, complete contents.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.data()), m.size()), "first version");
  EXPECT_EQ(read_file(path), "second");
}

TEST(MappedFile, EmptyFile) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  write_file(tmp / "empty", "");
  MappedFile m(tmp / "empty");
  EXPECT_EQ(m.size(), 0u);
}

TEST(MappedFile, MissingFileThrowsNamingIt) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  try {
    MappedFile m(tmp / "absent.emk");
    FAIL() << "expected earmark::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.emk"), std::string::npos) << e.what();
  }
}

TEST(SyncDirectory, ToleratesMissingDirectory) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  sync_directory(tmp.path());
  sync_directory(tmp / "missing");  // must not throw or crash
  SUCCEED();
}

}  // namespace
}  // namespace earmark
