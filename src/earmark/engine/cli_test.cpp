// The `earmark` command line, run as a real process (EARMARK_CLI_PATH) in a temporary directory:
// indexing folders and TSV lists, list / info / stats / remove, the scan output formats, bad
// inputs, and SIGKILL in the middle of `index` and `compact`.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "earmark/common/test_audio_test_util.h"

extern char** environ;

namespace earmark {
namespace {

namespace fs = std::filesystem;
using namespace earmark::testutil;
using json = nlohmann::json;

const std::string kCli = EARMARK_CLI_PATH;
const std::string kTrain = EARMARK_TRAIN_PATH;

// Runs `earmark <args>` through the shell (args are already quoted where needed).
CommandResult cli(const std::string& args, const std::string& scratch) {
  return run_capture(shell_quote(kCli) + " " + args, scratch);
}

std::string q(const std::string& s) { return shell_quote(s); }

json parse_or_null(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json() : j;
}

// Every line of a jsonl output, parsed (null where a line is not JSON).
std::vector<json> jsonl_rows(const std::string& out) {
  std::istringstream lines(out);
  std::string line;
  std::vector<json> rows;
  while (std::getline(lines, line)) rows.push_back(parse_or_null(line));
  return rows;
}

std::string show(const CommandResult& r) {
  return "exit " + std::to_string(r.status) + "\n--- stdout:\n" + r.out + "\n--- stderr:\n" + r.err;
}

// Files whose name contains ".tmp." under dir.
std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.find(".tmp.") != std::string::npos) out.push_back(name);
  }
  return out;
}

size_t count_files(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    (void)e;
    ++n;
  }
  return n;
}

// Starts `earmark <args>` without a shell (so the pid is the CLI's), stdout and stderr to files.
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& out_path,
                const std::string& err_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  std::vector<std::string> all = {kCli};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, kCli.c_str(), &actions, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

struct KillOutcome {
  bool killed = false;    // SIGKILL arrived while the process was running
  bool saw_temp = false;  // a *.tmp.* file had appeared in <index>/segments
  double seconds = 0;     // from start to kill
  int exit_code = -1;     // when it finished on its own
};

// Starts the CLI, polls <index>/segments until a temporary segment appears (or, with
// `after_rename`, until it has appeared and been renamed) or `timeout_s` passes, then SIGKILLs
// it.
KillOutcome run_and_kill(const std::vector<std::string>& args, const std::string& index_dir,
                         double timeout_s, const std::string& scratch, bool after_rename = false) {
  KillOutcome k;
  const auto t0 = std::chrono::steady_clock::now();
  pid_t pid = spawn_cli(args, scratch + "/killed.out", scratch + "/killed.err");
  if (pid <= 0) return k;
  const std::string seg_dir = index_dir + "/segments";
  int status = 0;
  bool exited = false;
  for (;;) {
    const bool temp_now = !temp_files(seg_dir).empty();
    if (temp_now && !after_rename) {
      k.saw_temp = true;
      break;
    }
    if (after_rename && k.saw_temp && !temp_now) break;
    k.saw_temp = k.saw_temp || temp_now;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s)
      break;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  k.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  k.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (WIFEXITED(status)) k.exit_code = WEXITSTATUS(status);
  return k;
}

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_TRUE(dir_->ok());
    if (!fs::exists(kCli)) return;
    const std::string d = dir_->path();
    fs::create_directories(d + "/lib");
    fs::create_directories(d + "/cat/sounds");
    fs::create_directories(d + "/lib2");
    fs::create_directories(d + "/q");
    fs::create_directories(d + "/scratch");
    // A folder of references (one of them FLAC when ffmpeg is there, and a non-media file that
    // folder indexing must skip).
    write_wav(d + "/lib/alpha.wav", synth_music(201, 20.0));
    write_wav(d + "/lib/gamma.wav", synth_music(203, 20.0));
    write_wav(d + "/scratch/beta.wav", synth_music(202, 20.0));
    if (!(have_tool("ffmpeg") && ffmpeg_convert(d + "/scratch/beta.wav", d + "/lib/beta.flac")))
      fs::copy_file(d + "/scratch/beta.wav", d + "/lib/beta.wav");
    write_file(d + "/lib/README.txt", "not audio, not indexed\n");
    // A TSV list with ids, types, a title, a comment and a path outside its folder.
    write_wav(d + "/cat/sounds/logo one.wav", synth_music(301, 6.0));
    write_wav(d + "/cat/sounds/tune.wav", synth_music(302, 20.0));
    write_wav(d + "/lib2/other.wav", synth_music(303, 12.0));
    write_file(d + "/cat/list.tsv",
               "# id\tpath\ttype\ttitle\n"
               "D0042\tsounds/logo one.wav\tjingle\n"
               "D0043\tsounds/tune.wav\tmusic\tA Tune Title\n"
               "\n"
               "X-7\t../lib2/other.wav\r\n");
    index_folder_ =
        new CommandResult(cli("-i " + q(index()) + " index " + q(d + "/lib"), scratch()));
    index_tsv_ =
        new CommandResult(cli("-i " + q(index()) + " index " + q(d + "/cat/list.tsv"), scratch()));
  }
  static void TearDownTestSuite() {
    delete index_folder_;
    delete index_tsv_;
    delete dir_;
    index_folder_ = index_tsv_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!fs::exists(kCli)) GTEST_SKIP() << "CLI not built: " << kCli;
  }

  static std::string path(const std::string& rel) { return dir_->path() + "/" + rel; }
  static std::string index() { return path("index"); }
  static std::string scratch() { return path("scratch"); }
  static CommandResult run(const std::string& args) { return cli(args, scratch()); }
  static CommandResult on(const std::string& index_dir, const std::string& args) {
    return cli("-i " + q(index_dir) + " " + args, scratch());
  }
  static std::string copy_index(const std::string& name) {
    const std::string to = path(name);
    fs::remove_all(to);
    fs::copy(index(), to, fs::copy_options::recursive);
    return to;
  }
  // An 8 s excerpt of a reference's audio as a query file.
  static std::string excerpt(const std::string& name, uint64_t seed, double seconds, double start) {
    const std::string p = path("q/" + name + ".wav");
    if (!fs::exists(p)) write_wav(p, slice(synth_music(seed, seconds), start, 8.0));
    return p;
  }
  static std::set<std::string> listed_ids(const std::string& index_dir) {
    CommandResult r = on(index_dir, "list --format json");
    std::set<std::string> ids;
    json j = parse_or_null(r.out);
    EXPECT_EQ(r.status, 0) << show(r);
    EXPECT_TRUE(j.is_array()) << show(r);
    if (j.is_array())
      for (const json& e : j) ids.insert(e.value("id", ""));
    return ids;
  }

  static TempDir* dir_;
  static CommandResult* index_folder_;
  static CommandResult* index_tsv_;
};

TempDir* CliTest::dir_ = nullptr;
CommandResult* CliTest::index_folder_ = nullptr;
CommandResult* CliTest::index_tsv_ = nullptr;

const std::set<std::string> kAllIds = {"alpha", "beta", "gamma", "D0042", "D0043", "X-7"};

TEST_F(CliTest, IndexFolderAndTsvList) {
  ASSERT_NE(index_folder_, nullptr);
  EXPECT_EQ(index_folder_->status, 0) << show(*index_folder_);
  json a = parse_or_null(index_folder_->out);
  ASSERT_TRUE(a.is_object()) << show(*index_folder_);
  EXPECT_EQ(a["added"], 3);
  EXPECT_EQ(a["failed"], 0);
  EXPECT_EQ(a["already_present"], 0);
  EXPECT_NEAR(a["audio_seconds"].get<double>(), 60.0, 0.2);

  EXPECT_EQ(index_tsv_->status, 0) << show(*index_tsv_);
  json b = parse_or_null(index_tsv_->out);
  ASSERT_TRUE(b.is_object()) << show(*index_tsv_);
  EXPECT_EQ(b["added"], 3);
  EXPECT_EQ(b["failed"], 0);

  EXPECT_EQ(listed_ids(index()), kAllIds);
}

TEST_F(CliTest, ListTableAndJson) {
  CommandResult t = on(index(), "list");
  EXPECT_EQ(t.status, 0) << show(t);
  for (const std::string& id : kAllIds) EXPECT_NE(t.out.find(id), std::string::npos) << show(t);
  EXPECT_NE(t.out.find("A Tune Title"), std::string::npos) << show(t);

  CommandResult j = on(index(), "list --format json");
  json a = parse_or_null(j.out);
  ASSERT_TRUE(a.is_array()) << show(j);
  ASSERT_EQ(a.size(), 6u);
  // Timeline order: the folder (sorted by name), then the list in its order.
  std::vector<std::string> order;
  for (const json& e : a) order.push_back(e["id"]);
  EXPECT_EQ(order, (std::vector<std::string>{"alpha", "beta", "gamma", "D0042", "D0043", "X-7"}));
  for (const json& e : a) {
    EXPECT_TRUE(e.contains("title"));
    EXPECT_TRUE(e.contains("content_type"));
    EXPECT_TRUE(e.contains("duration_s"));
  }
}

TEST_F(CliTest, InfoShowsOneReference) {
  CommandResult r = on(index(), "info D0042");
  ASSERT_EQ(r.status, 0) << show(r);
  json j = parse_or_null(r.out);
  ASSERT_TRUE(j.is_object()) << show(r);
  EXPECT_EQ(j["id"], "D0042");
  EXPECT_EQ(j["title"], "logo one");          // no title column: the file name without extension
  EXPECT_EQ(j["content_type"], "trademark");  // "jingle" is a trademark
  EXPECT_NEAR(j["duration_s"].get<double>(), 6.0, 0.01);
  EXPECT_EQ(fs::path(j["source_path"].get<std::string>()),
            fs::path(path("cat/sounds/logo one.wav")));
  EXPECT_EQ(j["content_hash"].get<std::string>().size(), 32u);

  json t = parse_or_null(on(index(), "info D0043").out);
  EXPECT_EQ(t["title"], "A Tune Title");
  EXPECT_EQ(t["content_type"], "music");
  json x = parse_or_null(on(index(), "info X-7").out);
  EXPECT_EQ(x["content_type"], "music");
  EXPECT_NEAR(x["duration_s"].get<double>(), 12.0, 0.01);

  CommandResult missing = on(index(), "info d0042");
  EXPECT_NE(missing.status, 0) << "ids are exact";
  EXPECT_NE(missing.err.find("d0042"), std::string::npos) << show(missing);
}

TEST_F(CliTest, StatsIsJson) {
  CommandResult r = on(index(), "stats");
  ASSERT_EQ(r.status, 0) << show(r);
  json j = parse_or_null(r.out);
  ASSERT_TRUE(j.is_object()) << show(r);
  EXPECT_EQ(j["references"], 6);
  EXPECT_EQ(j["segments"], 2);  // one per `index` run
  EXPECT_GT(j["landmarks"].get<int64_t>(), 1000);
  EXPECT_GT(j["segment_bytes"].get<int64_t>(), 0);
  EXPECT_NEAR(j["audio_hours"].get<double>(), (60 + 6 + 20 + 12) / 3600.0, 0.002);
  EXPECT_EQ(j["removed_awaiting_compaction"], 0);
  EXPECT_EQ(j["settings"]["fft_size"], 1024);
  EXPECT_FALSE(j.contains("damaged_segments"));

  CommandResult v = on(index(), "stats --verify");
  EXPECT_EQ(v.status, 0) << show(v);
  json jv = parse_or_null(v.out);
  ASSERT_TRUE(jv.is_object()) << show(v);
  EXPECT_TRUE(jv["damaged_segments"].empty());
}

TEST_F(CliTest, ReindexingReportsAlreadyPresent) {
  const std::string idx = copy_index("index-reindex");
  CommandResult r = on(idx, "index " + q(path("lib")));
  EXPECT_EQ(r.status, 0) << show(r);
  json j = parse_or_null(r.out);
  EXPECT_EQ(j["added"], 0) << show(r);
  EXPECT_EQ(j["already_present"], 3) << show(r);
  EXPECT_EQ(parse_or_null(on(idx, "stats").out)["segments"], 2);
}

TEST_F(CliTest, SingleFileWithIdAndTitle) {
  const std::string idx = copy_index("index-single");
  write_wav(path("scratch/single.wav"), synth_music(404, 10.0));
  CommandResult r = on(
      idx, "index --type logo --id 'Spot #1' --title 'Spot one' " + q(path("scratch/single.wav")));
  ASSERT_EQ(r.status, 0) << show(r);
  json j = parse_or_null(on(idx, "info 'Spot #1'").out);
  EXPECT_EQ(j["title"], "Spot one");
  EXPECT_EQ(j["content_type"], "trademark");
  // --id with several files is refused.
  CommandResult two =
      on(idx, "index --id X " + q(path("lib/alpha.wav")) + " " + q(path("lib/gamma.wav")));
  EXPECT_NE(two.status, 0) << show(two);
  // Unknown --type is refused by the parser.
  CommandResult bad_type = on(idx, "index --type song " + q(path("lib/alpha.wav")));
  EXPECT_NE(bad_type.status, 0) << show(bad_type);
}

void expect_match_fields(const json& m) {
  for (const char* f : {"ref", "title", "content_type", "query_start", "query_end", "ref_start",
                        "ref_end", "score", "speed", "pitch"})
    EXPECT_TRUE(m.contains(f)) << "missing field " << f << " in " << m.dump();
  EXPECT_TRUE(m["ref"].is_string());
  EXPECT_TRUE(m["query_start"].is_number());
  EXPECT_TRUE(m["score"].is_number());
}

TEST_F(CliTest, ScanJson) {
  const std::string qa = excerpt("gamma-6", 203, 20.0, 6.0);
  const std::string qb = excerpt("tune-10", 302, 20.0, 10.0);
  CommandResult r = on(index(), "scan --format json " + q(qa) + " " + q(qb));
  ASSERT_EQ(r.status, 0) << show(r);
  json j = parse_or_null(r.out);
  ASSERT_TRUE(j.is_array()) << show(r);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["query"], qa);
  EXPECT_NEAR(j[0]["duration_s"].get<double>(), 8.0, 0.01);
  ASSERT_FALSE(j[0]["matches"].empty()) << show(r);
  const json& m = j[0]["matches"][0];
  expect_match_fields(m);
  EXPECT_EQ(m["ref"], "gamma");
  EXPECT_EQ(m["title"], "gamma");
  EXPECT_EQ(m["content_type"], "music");
  EXPECT_NEAR(m["ref_start"].get<double>() - m["query_start"].get<double>(), 6.0, 0.5);
  EXPECT_NEAR(m["speed"].get<double>(), 1.0, 0.01);
  EXPECT_NEAR(m["pitch"].get<double>(), 1.0, 0.02);  // frequency factor
  EXPECT_LT(m["query_start"].get<double>(), m["query_end"].get<double>());
  ASSERT_FALSE(j[1]["matches"].empty()) << show(r);
  EXPECT_EQ(j[1]["matches"][0]["ref"], "D0043");
  EXPECT_EQ(j[1]["matches"][0]["title"], "A Tune Title");
}

TEST_F(CliTest, ScanJsonl) {
  const std::string qa = excerpt("alpha-2", 201, 20.0, 2.0);
  const std::string qb = excerpt("other-3", 303, 12.0, 3.0);
  CommandResult r = on(index(), "scan --format jsonl " + q(qa) + " " + q(qb));
  ASSERT_EQ(r.status, 0) << show(r);
  const std::vector<json> rows = jsonl_rows(r.out);
  ASSERT_EQ(rows.size(), 2u) << show(r);
  for (const json& row : rows) {
    ASSERT_TRUE(row.is_object()) << show(r);
    ASSERT_FALSE(row["matches"].empty()) << show(r);
    expect_match_fields(row["matches"][0]);
  }
  EXPECT_EQ(rows[0]["matches"][0]["ref"], "alpha");
  EXPECT_EQ(rows[1]["matches"][0]["ref"], "X-7");
  EXPECT_NEAR(rows[1]["matches"][0]["ref_start"].get<double>() -
                  rows[1]["matches"][0]["query_start"].get<double>(),
              3.0, 0.5);
}

TEST_F(CliTest, ScanTable) {
  const std::string qa = excerpt("gamma-6", 203, 20.0, 6.0);
  const std::string qn = path("q/silence.wav");
  write_wav(qn, std::vector<float>(16000 * 3, 0.0f));
  CommandResult r = on(index(), "scan --format table " + q(qa) + " " + q(qn));
  ASSERT_EQ(r.status, 0) << show(r);
  EXPECT_NE(r.out.find(qa), std::string::npos) << show(r);
  EXPECT_NE(r.out.find("gamma"), std::string::npos) << show(r);
  EXPECT_NE(r.out.find("score"), std::string::npos) << show(r);
  EXPECT_NE(r.out.find("speed"), std::string::npos) << show(r);
  EXPECT_NE(r.out.find("pitch"), std::string::npos) << show(r);
  EXPECT_NE(r.out.find("1 match\n"), std::string::npos) << show(r);
  EXPECT_NE(r.out.find("0 matches"), std::string::npos) << show(r);
}

TEST_F(CliTest, ScanFolderAndList) {
  const std::string qa = excerpt("gamma-6", 203, 20.0, 6.0);
  const std::string qb = excerpt("tune-10", 302, 20.0, 10.0);
  fs::create_directories(path("qdir/sub"));
  fs::copy_file(qa, path("qdir/a.wav"), fs::copy_options::overwrite_existing);
  fs::copy_file(qb, path("qdir/sub/b.wav"), fs::copy_options::overwrite_existing);
  write_file(path("qdir/notes.txt"), "skipped: not a media extension");
  CommandResult r = on(index(), "scan --format json " + q(path("qdir")));
  ASSERT_EQ(r.status, 0) << show(r);
  json j = parse_or_null(r.out);
  ASSERT_TRUE(j.is_array()) << show(r);
  ASSERT_EQ(j.size(), 2u) << show(r);
  EXPECT_EQ(j[0]["matches"][0]["ref"], "gamma");
  EXPECT_EQ(j[1]["matches"][0]["ref"], "D0043");

  // A query list with paths relative to the list's folder.
  write_file(path("qdir/queries.txt"), "# queries\nsub/b.wav\n\na.wav\n");
  CommandResult l = on(index(), "scan --format jsonl --list " + q(path("qdir/queries.txt")));
  ASSERT_EQ(l.status, 0) << show(l);
  std::vector<std::string> refs;
  for (json& row : jsonl_rows(l.out))
    if (row.is_object() && !row["matches"].empty()) refs.push_back(row["matches"][0]["ref"]);
  EXPECT_EQ(refs, (std::vector<std::string>{"D0043", "gamma"})) << show(l);
}

TEST_F(CliTest, ScanBatchWithBadFiles) {
  const std::string good = excerpt("alpha-2", 201, 20.0, 2.0);
  const std::string missing = path("q/missing.wav");
  const std::string empty = path("q/empty.wav");
  const std::string text = path("q/readme.txt");
  const std::string truncated = path("q/truncated.mp3");
  write_file(empty, "");
  write_file(text, "This is a text file, not audio.\n");
  std::vector<std::string> bad = {missing, empty, text};
  if (have_tool("ffmpeg")) {
    const std::string mp3 = path("scratch/full.mp3");
    ASSERT_TRUE(ffmpeg_convert(good, mp3, "-c:a libmp3lame -b:a 64k"));
    // Cut inside the first frames: nothing decodable is left.
    write_file(truncated, read_file(mp3).substr(0, 400));
    bad.push_back(truncated);
  }
  std::string args = "scan --format json";
  for (const std::string& b : bad) args += " " + q(b);
  args += " " + q(good);
  CommandResult r = on(index(), args);
  EXPECT_NE(r.status, 0) << show(r);
  json j = parse_or_null(r.out);
  ASSERT_TRUE(j.is_array()) << show(r);
  ASSERT_EQ(j.size(), bad.size() + 1) << show(r);
  for (size_t i = 0; i < bad.size(); ++i) {
    EXPECT_EQ(j[i]["query"], bad[i]);
    ASSERT_TRUE(j[i].contains("error")) << j[i].dump();
    EXPECT_NE(j[i]["error"].get<std::string>().find(fs::path(bad[i]).filename().string()),
              std::string::npos)
        << j[i].dump();
    EXPECT_TRUE(j[i]["matches"].empty());
    // The log says it too, once per file.
    EXPECT_NE(r.err.find(fs::path(bad[i]).filename().string()), std::string::npos) << show(r);
  }
  const json& ok = j[bad.size()];
  EXPECT_FALSE(ok.contains("error")) << ok.dump();
  ASSERT_FALSE(ok["matches"].empty()) << show(r);
  EXPECT_EQ(ok["matches"][0]["ref"], "alpha");

  // jsonl: one line per query as well, the good one included.
  CommandResult l = on(index(), "scan --format jsonl " + q(missing) + " " + q(good));
  EXPECT_NE(l.status, 0);
  int n = 0, with_error = 0;
  for (const json& row : jsonl_rows(l.out)) {
    ASSERT_TRUE(row.is_object()) << show(l);
    ++n;
    with_error += row.contains("error");
  }
  EXPECT_EQ(n, 2);
  EXPECT_EQ(with_error, 1);
}

// A truncated mp3 that still holds audio is decoded as far as it goes (documented behaviour):
// a result, not an error, and the excerpt is still found.
TEST_F(CliTest, PartlyTruncatedMp3IsScannedAsFarAsItGoes) {
  if (!have_tool("ffmpeg")) GTEST_SKIP() << "ffmpeg not installed";
  const std::string good = excerpt("alpha-2", 201, 20.0, 2.0);
  const std::string mp3 = path("scratch/full2.mp3");
  ASSERT_TRUE(ffmpeg_convert(good, mp3, "-c:a libmp3lame -b:a 64k"));
  const std::string bytes = read_file(mp3);
  const std::string half = path("q/half.mp3");
  write_file(half, bytes.substr(0, bytes.size() / 2));
  CommandResult r = on(index(), "scan --format json " + q(half));
  EXPECT_EQ(r.status, 0) << show(r);
  json j = parse_or_null(r.out);
  ASSERT_TRUE(j.is_array() && j.size() == 1) << show(r);
  EXPECT_FALSE(j[0].contains("error")) << show(r);
  EXPECT_NEAR(j[0]["duration_s"].get<double>(), 4.0, 0.5);
  ASSERT_FALSE(j[0]["matches"].empty()) << show(r);
  EXPECT_EQ(j[0]["matches"][0]["ref"], "alpha");
  EXPECT_FALSE(r.err.empty()) << "a warning about the truncation is expected";
}

TEST_F(CliTest, ScanWithoutIndexFails) {
  const std::string good = excerpt("alpha-2", 201, 20.0, 2.0);
  const std::string nowhere = path("no-index-here");
  CommandResult r = on(nowhere, "scan " + q(good));
  EXPECT_NE(r.status, 0) << show(r);
  EXPECT_NE(r.err.find("no Earmark index"), std::string::npos) << show(r);
  EXPECT_FALSE(fs::exists(nowhere)) << "scan must not create an index";
  EXPECT_EQ(parse_or_null(r.out), json()) << "no results on stdout: " << r.out;
  // The EARMARK_INDEX environment variable names the default index.
  CommandResult e = run_capture("EARMARK_INDEX=" + q(nowhere) + " " + q(kCli) + " list", scratch());
  EXPECT_NE(e.status, 0) << show(e);
  CommandResult ok =
      run_capture("EARMARK_INDEX=" + q(index()) + " " + q(kCli) + " info alpha", scratch());
  EXPECT_EQ(ok.status, 0) << show(ok);
}

TEST_F(CliTest, RemoveUnknownIdFails) {
  const std::string idx = copy_index("index-remove");
  CommandResult r = on(idx, "remove NOPE");
  EXPECT_NE(r.status, 0) << show(r);
  EXPECT_NE(r.err.find("NOPE"), std::string::npos) << show(r);
  EXPECT_EQ(listed_ids(idx), kAllIds);

  CommandResult ok = on(idx, "remove D0043");
  EXPECT_EQ(ok.status, 0) << show(ok);
  EXPECT_NE(ok.out.find("removed D0043"), std::string::npos) << show(ok);
  std::set<std::string> left = kAllIds;
  left.erase("D0043");
  EXPECT_EQ(listed_ids(idx), left);
  EXPECT_NE(on(idx, "info D0043").status, 0);
  json s = parse_or_null(on(idx, "stats").out);
  EXPECT_EQ(s["removed_awaiting_compaction"], 1);
  // Its audio is no longer found.
  CommandResult scan = on(idx, "scan --format json " + q(excerpt("tune-10", 302, 20.0, 10.0)));
  json j = parse_or_null(scan.out);
  ASSERT_TRUE(j.is_array()) << show(scan);
  EXPECT_TRUE(j[0]["matches"].empty()) << show(scan);
  // Mixed known and unknown ids: the known one is removed, the exit code reports the other.
  CommandResult mixed = on(idx, "remove X-7 NOPE");
  EXPECT_NE(mixed.status, 0);
  EXPECT_NE(on(idx, "info X-7").status, 0);

  CommandResult c = on(idx, "compact");
  EXPECT_EQ(c.status, 0) << show(c);
  json after = parse_or_null(on(idx, "stats").out);
  EXPECT_EQ(after["segments"], 1);
  EXPECT_EQ(after["references"], 4);
  EXPECT_EQ(after["removed_awaiting_compaction"], 0);
  EXPECT_EQ(count_files(idx + "/segments"), 1u);
}

TEST_F(CliTest, InvalidSettingOnCreationFails) {
  const std::string idx = path("index-bad-setting");
  CommandResult r = on(idx, "index " + q(path("lib/alpha.wav")) + " --set fft_size=1000");
  EXPECT_NE(r.status, 0) << show(r);
  EXPECT_NE(r.err.find("fft_size"), std::string::npos) << show(r);
  EXPECT_FALSE(fs::exists(idx + "/catalogue.sqlite"));
  CommandResult unknown = on(idx, "index " + q(path("lib/alpha.wav")) + " --set fft_sizes=1024");
  EXPECT_NE(unknown.status, 0);
  EXPECT_NE(unknown.err.find("fft_sizes"), std::string::npos) << show(unknown);
  CommandResult nan = on(idx, "index " + q(path("lib/alpha.wav")) + " --set hop=abc");
  EXPECT_NE(nan.status, 0);
  EXPECT_NE(nan.err.find("hop"), std::string::npos) << show(nan);
  // A valid setting creates the index with it.
  CommandResult good = on(idx, "index " + q(path("lib/alpha.wav")) + " --set fft_size=2048");
  EXPECT_EQ(good.status, 0) << show(good);
  EXPECT_EQ(parse_or_null(on(idx, "stats").out)["settings"]["fft_size"], 2048);
}

// `--set key=value` written before the inputs, the way the help text lists the options.
TEST_F(CliTest, SetOptionBeforeInputs) {
  const std::string idx = path("index-set-first");
  CommandResult bad = on(idx, "index --set fft_size=1000 " + q(path("lib/alpha.wav")));
  EXPECT_NE(bad.status, 0) << show(bad);
  EXPECT_NE(bad.err.find("fft_size"), std::string::npos) << "the error should be about fft_size\n"
                                                         << show(bad);
  CommandResult good = on(idx, "index --set peaks_per_second=30 " + q(path("lib/alpha.wav")));
  EXPECT_EQ(good.status, 0) << show(good);
  EXPECT_EQ(parse_or_null(good.out)["added"], 1) << show(good);
}

// `scan --list FILE` followed by more inputs: the inputs are queries too, not more lists.
TEST_F(CliTest, ListOptionBeforeInputs) {
  const std::string qa = excerpt("gamma-6", 203, 20.0, 6.0);
  const std::string qb = excerpt("tune-10", 302, 20.0, 10.0);
  write_file(path("scratch/one-query.txt"), qa + "\n");
  CommandResult r =
      on(index(), "scan --format jsonl --list " + q(path("scratch/one-query.txt")) + " " + q(qb));
  EXPECT_EQ(r.status, 0) << show(r);
  std::vector<std::string> queries;
  for (const json& row : jsonl_rows(r.out))
    if (row.is_object()) queries.push_back(row.value("query", ""));
  EXPECT_EQ(queries, (std::vector<std::string>{qa, qb})) << show(r);
}

// File names are bytes on Linux, not necessarily UTF-8 (e.g. Latin-1 names from old archives).
// JSON output must still be produced for them.
TEST_F(CliTest, NonUtf8FileNames) {
  const std::string idx = path("index-latin1");
  const std::string name = path("scratch/caf\xe9.wav");  // "café" in Latin-1
  write_wav(name, synth_music(505, 12.0));
  CommandResult add = on(idx, "index " + q(name));
  ASSERT_EQ(add.status, 0) << show(add);
  CommandResult l = on(idx, "list --format json");
  EXPECT_EQ(l.status, 0) << show(l);
  json lj = parse_or_null(l.out);
  EXPECT_TRUE(lj.is_array() && lj.size() == 1) << show(l);
  const std::string query = path("q/caf\xe9-excerpt.wav");
  write_wav(query, slice(synth_music(505, 12.0), 2.0, 8.0));
  CommandResult s = on(idx, "scan --format json " + q(query));
  EXPECT_EQ(s.status, 0) << show(s);
  json sj = parse_or_null(s.out);
  ASSERT_TRUE(sj.is_array() && sj.size() == 1) << show(s);
  EXPECT_EQ(sj[0]["matches"].size(), 1u) << show(s);
}

TEST_F(CliTest, OtherSettingsOnExistingIndexAreRefused) {
  const std::string idx = copy_index("index-other-settings");
  CommandResult r = on(idx, "index " + q(path("lib2/other.wav")) + " --set fft_size=2048");
  EXPECT_NE(r.status, 0) << show(r);
  EXPECT_NE(r.err.find("fft_size"), std::string::npos) << show(r);
  EXPECT_EQ(listed_ids(idx), kAllIds);
}

TEST_F(CliTest, UsageErrors) {
  EXPECT_NE(run("").status, 0);
  EXPECT_NE(on(index(), "scan --format xml " + q(path("lib/alpha.wav"))).status, 0);
  EXPECT_NE(on(index(), "frobnicate").status, 0);
  CommandResult nothing = on(path("index-nothing"), "index");
  EXPECT_NE(nothing.status, 0);
  EXPECT_FALSE(fs::exists(path("index-nothing/catalogue.sqlite")));
  CommandResult no_query = on(index(), "scan");
  EXPECT_NE(no_query.status, 0);
  CommandResult bad_list = on(path("index-badlist"), "index " + q(path("scratch/nolist.tsv")));
  EXPECT_NE(bad_list.status, 0);
  write_file(path("scratch/broken.tsv"), "only-an-id\n");
  CommandResult broken = on(path("index-badlist"), "index " + q(path("scratch/broken.tsv")));
  EXPECT_NE(broken.status, 0);
  EXPECT_NE(broken.err.find("broken.tsv:1"), std::string::npos) << show(broken);
}

// Checks an index that a killed writer left behind: exactly `ids` listed, segments intact,
// references found by a scan.
void expect_index_consistent(const std::string& idx, const std::set<std::string>& ids,
                             const std::vector<std::pair<std::string, std::string>>& finds,
                             const std::string& scratch) {
  CommandResult l = cli("-i " + q(idx) + " list --format json", scratch);
  ASSERT_EQ(l.status, 0) << show(l);
  std::set<std::string> listed;
  for (const json& e : parse_or_null(l.out)) listed.insert(e["id"].get<std::string>());
  EXPECT_EQ(listed, ids);
  CommandResult v = cli("-i " + q(idx) + " stats --verify", scratch);
  EXPECT_EQ(v.status, 0) << show(v);
  json s = parse_or_null(v.out);
  EXPECT_EQ(s["references"], ids.size());
  for (const auto& [query, ref] : finds) {
    CommandResult r = cli("-i " + q(idx) + " scan --format json " + q(query), scratch);
    ASSERT_EQ(r.status, 0) << show(r);
    json j = parse_or_null(r.out);
    ASSERT_TRUE(j.is_array() && !j[0]["matches"].empty()) << ref << "\n" << show(r);
    EXPECT_EQ(j[0]["matches"][0]["ref"], ref);
  }
}

TEST_F(CliTest, KillDuringIndexLeavesTheIndexAsItWas) {
  // An index with two references, and a folder of 20 longer tracks to add.
  const std::string base = path("kill-base");
  fs::create_directories(path("kill-refs"));
  write_wav(path("kill-refs/K1.wav"), synth_music(701, 20.0));
  write_wav(path("kill-refs/K2.wav"), synth_music(702, 20.0));
  ASSERT_EQ(on(base, "index " + q(path("kill-refs"))).status, 0);
  const std::string many = path("kill-many");
  fs::create_directories(many);
  for (int i = 0; i < 20; ++i)
    write_wav(many + "/track" + std::to_string(10 + i) + ".wav", synth_music(800 + i, 30.0));
  // The same files listed five times (other ids, same audio): a run long enough to be killed
  // while it fingerprints.
  std::string tsv;
  for (int rep = 0; rep < 5; ++rep)
    for (int i = 0; i < 20; ++i)
      tsv += "R" + std::to_string(rep) + "-" + std::to_string(i) + "\ttrack" +
             std::to_string(10 + i) + ".wav\n";
  write_file(many + "/repeat.tsv", tsv);
  const std::string q1 = path("q/k1.wav"), q2 = path("q/k2.wav");
  write_wav(q1, slice(synth_music(701, 20.0), 4.0, 8.0));
  write_wav(q2, slice(synth_music(702, 20.0), 9.0, 8.0));
  const std::set<std::string> before = {"K1", "K2"};
  std::set<std::string> after = before;
  for (int i = 0; i < 20; ++i) after.insert("track" + std::to_string(10 + i));

  struct Attempt {
    const char* what;
    std::vector<std::string> args;
    double timeout_s;
    bool after_rename;
  };
  const std::vector<Attempt> attempts = {
      // Killed while fingerprinting (after ~0.3 s, unless a segment is written before).
      {"early", {"index", "-j", "1", many + "/repeat.tsv"}, 0.3, false},
      // Killed as soon as the new segment's temporary file appears.
      {"at segment write", {"index", many}, 20.0, false},
      // Killed just after the segment got its final name, around the catalogue commit.
      {"after segment rename", {"index", many}, 20.0, true},
  };
  int killed_runs = 0;
  for (const Attempt& a : attempts) {
    SCOPED_TRACE(a.what);
    const std::string idx = path("kill-index-" + std::to_string(killed_runs) + "-" +
                                 std::to_string(&a - attempts.data()));
    fs::remove_all(idx);
    fs::copy(base, idx, fs::copy_options::recursive);
    std::vector<std::string> args = {"-i", idx};
    args.insert(args.end(), a.args.begin(), a.args.end());
    KillOutcome k = run_and_kill(args, idx, a.timeout_s, scratch(), a.after_rename);
    std::printf(
        "[ info ] kill %s: after %.3f s, killed=%d, temp segment seen=%d, temp files "
        "left=%zu\n",
        a.what, k.seconds, int(k.killed), int(k.saw_temp), temp_files(idx + "/segments").size());
    if (!k.killed) {
      ADD_FAILURE() << "the run finished (exit " << k.exit_code << ") before it could be killed";
      continue;
    }
    ++killed_runs;
    // A kill can land after the catalogue transaction committed (then the whole batch is in);
    // never anything in between.
    std::set<std::string> listed = listed_ids(idx);
    if (listed != before) {
      std::printf("[ info ] kill %s landed after the commit\n", a.what);
      EXPECT_EQ(listed.size(), before.size() + 20) << "a partial batch is visible";
    }
    expect_index_consistent(idx, listed, {{q1, "K1"}, {q2, "K2"}}, scratch());
    if (::testing::Test::HasFailure()) continue;
    // A new run of the same work succeeds and cleans up what the killed one left.
    CommandResult again = on(idx, "index " + q(many));
    EXPECT_EQ(again.status, 0) << show(again);
    EXPECT_TRUE(temp_files(idx + "/segments").empty());
    json st = parse_or_null(on(idx, "stats --verify").out);
    EXPECT_EQ(st["references"], 22);
    EXPECT_EQ(size_t(st["segments"].get<int>()), count_files(idx + "/segments"))
        << "only live segments remain on disk";
    expect_index_consistent(idx, after, {{q1, "K1"}, {q2, "K2"}}, scratch());
  }
  EXPECT_EQ(killed_runs, int(attempts.size()));
}

TEST_F(CliTest, KillDuringCompactLeavesAUsableIndex) {
  // Three segments, one removed reference: compaction has real work to do.
  const std::string base = copy_index("compact-base");
  write_wav(path("scratch/extra.wav"), synth_music(901, 20.0));
  ASSERT_EQ(on(base, "index " + q(path("scratch/extra.wav"))).status, 0);
  ASSERT_EQ(on(base, "remove beta").status, 0);
  std::set<std::string> ids = kAllIds;
  ids.erase("beta");
  ids.insert("extra");
  const std::vector<std::pair<std::string, std::string>> finds = {
      {excerpt("gamma-6", 203, 20.0, 6.0), "gamma"}, {excerpt("other-3", 303, 12.0, 3.0), "X-7"}};
  // Kill at several moments: as soon as the temporary segment appears, and after fixed delays
  // that fall at different stages of the run.
  // (a negative delay: kill just after the merged segment got its final name).
  const std::vector<double> delays = {60.0, -60.0, 0.002, 0.005, 0.01, 0.02, 0.04};
  int killed = 0;
  for (size_t i = 0; i < delays.size(); ++i) {
    SCOPED_TRACE("delay " + std::to_string(delays[i]));
    const std::string idx = path("compact-kill-" + std::to_string(i));
    fs::copy(base, idx, fs::copy_options::recursive);
    KillOutcome k =
        run_and_kill({"-i", idx, "compact"}, idx, std::fabs(delays[i]), scratch(), delays[i] < 0);
    std::printf(
        "[ info ] kill compact (limit %.3f s): after %.4f s, killed=%d, temp seen=%d, "
        "files in segments=%zu\n",
        delays[i], k.seconds, int(k.killed), int(k.saw_temp), count_files(idx + "/segments"));
    killed += k.killed;
    if (!k.killed) {
      EXPECT_EQ(k.exit_code, 0);
    }
    expect_index_consistent(idx, ids, finds, scratch());
    // The removed reference stays gone.
    CommandResult r = on(idx, "scan --format json " + q(excerpt("beta-5", 202, 20.0, 5.0)));
    json j = parse_or_null(r.out);
    ASSERT_TRUE(j.is_array()) << show(r);
    for (const json& m : j[0]["matches"]) EXPECT_NE(m["ref"], "beta") << show(r);
    // A new compaction finishes the job and leaves exactly one segment file.
    CommandResult c = on(idx, "compact");
    EXPECT_EQ(c.status, 0) << show(c);
    json s = parse_or_null(on(idx, "stats --verify").out);
    EXPECT_EQ(s["segments"], 1);
    EXPECT_EQ(s["removed_awaiting_compaction"], 0);
    EXPECT_EQ(count_files(idx + "/segments"), 1u);
    expect_index_consistent(idx, ids, finds, scratch());
  }
  std::printf("[ info ] %d of %zu compaction runs were killed mid-way\n", killed, delays.size());
  EXPECT_GT(killed, 0);
}

// The embedding stage, on by default: landmark matches carry its verification when asked, and
// weights other than the index's are refused.
TEST_F(CliTest, EmbeddingStageVerifiesMatchesAndChecksItsModel) {
  const std::string query = excerpt("tune-10", 302, 20.0, 10.0);
  CommandResult r = on(index(), "scan --embedding-evidence --format json " + q(query));
  ASSERT_EQ(r.status, 0) << show(r);
  json j = parse_or_null(r.out);
  ASSERT_TRUE(j.is_array() && !j[0]["matches"].empty()) << show(r);
  const json& m = j[0]["matches"][0];
  EXPECT_EQ(m["ref"], "D0043");
  EXPECT_EQ(m["stage"], "landmark");
  EXPECT_GE(m["evidence"]["embedding_windows"].get<int>(), 10) << show(r);
  EXPECT_GT(m["evidence"]["embedding_margin"].get<double>(), 0.1) << show(r);

  // Without the stage, or without asking: the same match, without its evidence.
  CommandResult plain = on(index(), "scan --format json " + q(query));
  json p = parse_or_null(plain.out);
  ASSERT_TRUE(p.is_array() && !p[0]["matches"].empty()) << show(plain);
  EXPECT_EQ(p[0]["matches"][0]["ref"], "D0043");
  EXPECT_FALSE(p[0]["matches"][0]["evidence"].contains("embedding_margin"));

  // Weights that differ from the index's by one byte: refused, saying so.
  const std::string weights =
      std::string(EARMARK_SOURCE_DIR) + "/models/fingerprint_net.safetensors";
  std::string bytes = read_file(weights);
  ASSERT_GT(bytes.size(), 1000u);
  bytes[bytes.size() - 7] ^= 0x01;
  const std::string other = path("scratch/other.safetensors");
  write_file(other, bytes);
  CommandResult refused = on(index(), "scan --weights " + q(other) + " " + q(query));
  EXPECT_EQ(refused.status, 2) << show(refused);
  EXPECT_NE(refused.err.find("another embedding model"), std::string::npos) << show(refused);
  // An absurd embedding threshold is refused.
  CommandResult zero = on(index(), "scan --threshold-embedding 0 " + q(query));
  EXPECT_EQ(zero.status, 2) << show(zero);
  EXPECT_NE(zero.err.find("embedding threshold"), std::string::npos) << show(zero);
  // A landmark-only scan does not need them.
  EXPECT_EQ(on(index(), "scan --stages landmark --weights " + q(other) + " " + q(query)).status, 0);
}

// The embedding stage alone: an 8 s excerpt goes through the coarse pass, is refined and found
// where it is; the fine pass alone finds the same; unrelated audio refines to nothing.
TEST_F(CliTest, EmbeddingStageAloneWithItsCoarsePass) {
  const std::string query = excerpt("tune-10", 302, 20.0, 10.0);
  json found[2];
  const std::string passes[2] = {"", "--embedding-coarse-hop 0 "};
  for (int i = 0; i < 2; ++i) {
    CommandResult r =
        on(index(), "scan --stages embedding " + passes[i] + "--format json " + q(query));
    ASSERT_EQ(r.status, 0) << show(r);
    json j = parse_or_null(r.out);
    ASSERT_TRUE(j.is_array() && !j[0]["matches"].empty()) << show(r);
    found[i] = j[0]["matches"][0];
    EXPECT_EQ(found[i]["ref"], "D0043") << show(r);
    EXPECT_EQ(found[i]["stage"], "embedding");
    // The excerpt starts 10 s into the reference: the offset is right to the window hop.
    const double offset =
        found[i]["ref_start"].get<double>() - found[i]["query_start"].get<double>();
    EXPECT_NEAR(offset, 10.0, 0.15) << show(r);
  }
  EXPECT_EQ(found[0], found[1]);

  write_wav(path("q/unrelated.wav"), synth_music(977, 8.0));
  CommandResult none =
      on(index(), "scan --stages embedding --format json " + q(path("q/unrelated.wav")));
  ASSERT_EQ(none.status, 0) << show(none);
  json n = parse_or_null(none.out);
  ASSERT_TRUE(n.is_array()) << show(none);
  EXPECT_TRUE(n[0]["matches"].empty()) << show(none);

  // Absurd settings are refused.
  CommandResult bad = on(index(), "scan --stages embedding --embedding-refine-share 2 " + q(query));
  EXPECT_NE(bad.status, 0);
}

// A query under 2 s is padded with its own audio before it is embedded, so that a window can
// sit on the reference grid; what is reported is still in the query's own time.
TEST_F(CliTest, EmbeddingStageAloneFindsAShortQueryInItsOwnTime) {
  const std::string query = path("q/short.wav");
  // 1.5 s starting 10.25 s in: halfway between two reference windows 0.5 s apart.
  write_wav(query, slice(synth_music(302, 20.0), 10.25, 1.5));
  CommandResult r = on(index(), "scan --stages embedding --format json " + q(query));
  ASSERT_EQ(r.status, 0) << show(r);
  json j = parse_or_null(r.out);
  ASSERT_TRUE(j.is_array() && !j[0]["matches"].empty()) << show(r);
  const json& m = j[0]["matches"][0];
  EXPECT_EQ(m["ref"], "D0043") << show(r);
  const double start = m["query_start"].get<double>(), end = m["query_end"].get<double>();
  EXPECT_GE(start, 0.0) << show(r);
  EXPECT_LE(end, 1.5 + 1e-6) << show(r);
  EXPECT_GT(end - start, 0.9) << show(r);
  EXPECT_NEAR(m["ref_start"].get<double>() - start, 10.25, 0.15) << show(r);
}

// The published models through the CLI, with the fixtures' reduced CLAP and CNN14 weights (the
// real ones cannot be had here): an index holding their vectors, matches scored by them at their
// aligned offsets, their own search, and the messages when weights are missing.
TEST(ModelCli, PublishedModelsScoreAndSearch) {
  const std::string fixtures = EARMARK_SOURCE_DIR "/../shared/fixtures/models/";
  const std::string clap = fixtures + "laion_clap_htsat_r16.weights.safetensors";
  const std::string panns = fixtures + "panns_cnn14_r16.weights.safetensors";
  if (!fs::exists(clap)) GTEST_SKIP() << "fixtures not found";
  TempDir dir;
  const std::string a = dir / "a.wav", b = dir / "b.wav", query = dir / "query.wav";
  const std::vector<float> tune = synth_music(501, 20.0);
  write_wav(a, tune);
  write_wav(b, synth_music(502, 20.0));
  write_wav(query, slice(tune, 4.0, 6.0));  // on the 2 s window grid
  const std::string idx = dir / "index";
  const std::string models = " --model " + q("clap=" + clap + ",panns=" + panns);
  CommandResult made =
      cli("-i " + q(idx) + " index" + models + " --model-windows panns=4/2 " + q(a) + " " + q(b),
          dir.path());
  ASSERT_EQ(made.status, 0) << show(made);

  // The landmarks find it; both models score it where it aligns.
  CommandResult r = cli("-i " + q(idx) + " scan" + models + " " + q(query), dir.path());
  ASSERT_EQ(r.status, 0) << show(r);
  json j = parse_or_null(r.out);
  ASSERT_TRUE(j.is_array() && !j[0]["matches"].empty()) << show(r);
  const json& m = j[0]["matches"][0];
  EXPECT_EQ(m["ref"], "a") << show(r);
  for (const char* kind : {"clap", "panns"}) {
    const json& score = m["evidence"]["models"][kind];
    EXPECT_GE(score.value("windows", 0), 2) << kind << show(r);
    EXPECT_GT(score.value("similarity", 0.0), 0.98) << kind << show(r);
    EXPECT_GT(score.value("margin", 0.0), 0.0) << kind << show(r);
  }
  EXPECT_GT(m["evidence"].value("fused_margin", 0.0), 0.0) << show(r);

  // The models alone find it too, at its offset. Random weights tell references apart only
  // barely (margins of a few hundredths), hence the low threshold.
  r = cli(
      "-i " + q(idx) + " scan --stages models --threshold-model 0.001" + models + " " + q(query),
      dir.path());
  ASSERT_EQ(r.status, 0) << show(r);
  j = parse_or_null(r.out);
  ASSERT_TRUE(j.is_array() && !j[0]["matches"].empty()) << show(r);
  EXPECT_EQ(j[0]["matches"][0]["ref"], "a") << show(r);
  EXPECT_EQ(j[0]["matches"][0]["stage"], "model") << show(r);
  EXPECT_NEAR(j[0]["matches"][0]["ref_start"].get<double>() -
                  j[0]["matches"][0]["query_start"].get<double>(),
              4.0, 0.01)
      << show(r);

  // Music after the match is not held against it: each model compares only the clips inside the
  // match (6 s: the windows at 0 and 2 s), not the other song's that follow.
  const std::string two = dir / "two.wav";
  std::vector<float> both = slice(tune, 4.0, 6.0);
  append(both, slice(synth_music(502, 20.0), 4.0, 6.0));
  write_wav(two, both);
  r = cli("-i " + q(idx) + " scan" + models + " " + q(two), dir.path());
  ASSERT_EQ(r.status, 0) << show(r);
  j = parse_or_null(r.out);
  bool seen_a = false;
  for (const json& match : j[0]["matches"]) {
    if (match["ref"] != "a") continue;
    seen_a = true;
    EXPECT_LE(match["evidence"]["models"]["clap"].value("windows", 99), 2) << show(r);
  }
  EXPECT_TRUE(seen_a) << show(r);

  // Adding to the index needs the models' weights; missing weights say how to get them.
  CommandResult add = cli("-i " + q(idx) + " index " + q(query), dir.path());
  EXPECT_NE(add.status, 0);
  EXPECT_NE(add.err.find("--model clap=PATH"), std::string::npos) << show(add);
  CommandResult missing =
      cli("-i " + q(idx) + " scan --model clap=/nowhere/clap.safetensors " + q(query), dir.path());
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("convert_checkpoint.py"), std::string::npos) << show(missing);
  CommandResult other_kind =
      cli("-i " + q(idx) + " index --model " + q("clap=" + clap + ",ast=" + clap) + " " + q(query),
          dir.path());
  EXPECT_NE(other_kind.status, 0);
  EXPECT_NE(other_kind.err.find("holds no ast vectors"), std::string::npos) << show(other_kind);

  // With one reference there is no other to measure a margin against: the models alone report
  // nothing, however similar the query.
  const std::string one = dir / "one";
  ASSERT_EQ(
      cli("-i " + q(one) + " index --model " + q("panns=" + panns) + " " + q(a), dir.path()).status,
      0);
  r = cli("-i " + q(one) + " scan --stages models --threshold-model 0.001 --model " +
              q("panns=" + panns) + " " + q(dir / "b.wav"),
          dir.path());
  ASSERT_EQ(r.status, 0) << show(r);
  EXPECT_TRUE(parse_or_null(r.out)[0]["matches"].empty()) << show(r);

  CommandResult bad = cli("-i " + q(dir / "other") + " index --model vggish=x " + q(a), dir.path());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("unknown model"), std::string::npos) << show(bad);
}

// Pairs made by `earmark train --prepare-only`, the network trained on them by earmark-train (the
// binary that also builds alone against a CUDA libtorch).
TEST(TrainCli, PreparesPairsThenTrainsOnThemElsewhere) {
  TempDir dir;
  std::string music;
  for (uint64_t s = 1; s <= 6; ++s) {
    const std::string p = dir / ("m" + std::to_string(s) + ".wav");
    write_wav(p, synth_music(s * 17, 12.0));
    music += " " + q(p);
  }
  const std::string made = dir / "made", trained = dir / "trained";
  CommandResult prep = cli("train --prepare-only --music" + music + " -o " + q(made) +
                               " --pairs 64 --val-pairs 16 --batch 16 -j 1",
                           dir.path());
  ASSERT_EQ(prep.status, 0) << show(prep);
  json p = parse_or_null(prep.out);
  EXPECT_EQ(p.value("train_count", 0), 64) << show(prep);
  EXPECT_EQ(p.value("val_count", 0), 16) << show(prep);
  EXPECT_FALSE(fs::exists(made + "/fingerprint_net.safetensors"));  // prepared, not trained

  const std::string tiny = " --batch 16 --channels 8,16,16 --dim 32 -j 1 --checkpoint-every 5";
  auto train = [&](int steps) {
    return run_capture(shell_quote(kTrain) + " --pairs " + q(made) + " -o " + q(trained) +
                           " --steps " + std::to_string(steps) + tiny,
                       dir.path());
  };
  CommandResult first = train(6);
  ASSERT_EQ(first.status, 0) << show(first);
  EXPECT_EQ(parse_or_null(first.out).value("steps", 0), 6) << show(first);
  EXPECT_TRUE(fs::exists(trained + "/fingerprint_net.safetensors"));
  CommandResult more = train(8);  // resumes from the checkpoint
  ASSERT_EQ(more.status, 0) << show(more);
  EXPECT_EQ(parse_or_null(more.out).value("steps", 0), 8) << show(more);
  EXPECT_NE(more.err.find("resuming at step 6"), std::string::npos) << show(more);

  CommandResult missing = run_capture(
      shell_quote(kTrain) + " --pairs " + q(dir / "nowhere") + " -o " + q(dir / "x") + tiny,
      dir.path());
  EXPECT_EQ(missing.status, 2) << show(missing);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << show(missing);
  CommandResult bad_channels = run_capture(
      shell_quote(kTrain) + " --pairs " + q(made) + " -o " + q(dir / "y") + " --channels 8,x",
      dir.path());
  EXPECT_EQ(bad_channels.status, 2) << show(bad_channels);
  EXPECT_NE(bad_channels.err.find("--channels"), std::string::npos) << show(bad_channels);
}

}  // namespace
}  // namespace earmark
