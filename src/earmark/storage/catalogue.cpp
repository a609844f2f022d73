#include "earmark/storage/catalogue.h"

#include <sqlite3.h>

#include "earmark/common/error.h"

namespace earmark {

namespace {

// Owns one prepared statement; binds by position from 1.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, const std::string& path) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) fail("prepare");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.c_str(), int(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& bind(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  Statement& bind_blob(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("step");
    return false;
  }
  std::string text(int c) const {
    const unsigned char* t = sqlite3_column_text(stmt_, c);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
  int64_t integer(int c) const { return sqlite3_column_int64(stmt_, c); }
  double real(int c) const { return sqlite3_column_double(stmt_, c); }
  std::string blob(int c) const {
    const void* p = sqlite3_column_blob(stmt_, c);
    return p ? std::string(static_cast<const char*>(p), size_t(sqlite3_column_bytes(stmt_, c)))
             : std::string();
  }

 private:
  [[noreturn]] void fail(const char* what) {
    throw Error("catalogue " + path_ + ": " + what + " failed: " + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string path_;
};

const char* kSelectRef =
    "SELECT key, id, title, content_type, source_path, duration_s, content_hash, added_at, "
    "metadata, frame_base, frame_count FROM refs ";

Reference read_ref(const Statement& s) {
  Reference r;
  r.key = s.integer(0);
  r.id = s.text(1);
  r.title = s.text(2);
  r.content_type = parse_content_type(s.text(3));
  r.source_path = s.text(4);
  r.duration_s = s.real(5);
  r.content_hash = s.text(6);
  r.added_at = s.integer(7);
  r.metadata = nlohmann::json::parse(s.text(8), nullptr, false);
  if (r.metadata.is_discarded()) r.metadata = nlohmann::json::object();
  r.frame_base = uint64_t(s.integer(9));
  r.frame_count = uint32_t(s.integer(10));
  return r;
}

}  // namespace

std::string to_string(ContentType type) {
  switch (type) {
    case ContentType::kMusic:
      return "music";
    case ContentType::kTrademark:
      return "trademark";
    case ContentType::kOther:
      return "other";
  }
  return "other";
}

ContentType parse_content_type(const std::string& text) {
  if (text == "music") return ContentType::kMusic;
  if (text == "trademark" || text == "jingle" || text == "logo") return ContentType::kTrademark;
  if (text == "other") return ContentType::kOther;
  throw Error("unknown content type '" + text + "' (expected music, trademark or other)");
}

Catalogue::Catalogue(const std::string& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error("cannot open catalogue " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 30000);
  try {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    exec(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS refs (key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
        " title TEXT, content_type TEXT NOT NULL, source_path TEXT, duration_s REAL,"
        " content_hash TEXT, added_at INTEGER, metadata TEXT, frame_base INTEGER NOT NULL,"
        " frame_count INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS refs_hash ON refs(content_hash);"
        "CREATE TABLE IF NOT EXISTS segments (name TEXT PRIMARY KEY);"
        "CREATE TABLE IF NOT EXISTS removed (frame_base INTEGER PRIMARY KEY,"
        " frame_count INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS logo_templates (ref_key INTEGER PRIMARY KEY,"
        " data BLOB NOT NULL);"
        "CREATE TABLE IF NOT EXISTS embeddings (ref_key INTEGER PRIMARY KEY,"
        " data BLOB NOT NULL);"
        "CREATE TABLE IF NOT EXISTS model_vectors (ref_key INTEGER NOT NULL, model TEXT NOT NULL,"
        " starts BLOB NOT NULL, data BLOB NOT NULL, PRIMARY KEY (ref_key, model));");
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Catalogue::~Catalogue() { sqlite3_close(db_); }

void Catalogue::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw Error("catalogue " + path_ + ": " + msg);
  }
}

std::optional<std::string> Catalogue::meta(const std::string& key) const {
  Statement s(db_, "SELECT value FROM meta WHERE key = ?", path_);
  s.bind(1, key);
  if (s.step()) return s.text(0);
  return std::nullopt;
}

void Catalogue::set_meta(const std::string& key, const std::string& value) {
  Statement s(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", path_);
  s.bind(1, key).bind(2, value).step();
}

std::optional<Reference> Catalogue::find_id(const std::string& id) const {
  Statement s(db_, std::string(kSelectRef) + "WHERE id = ?", path_);
  s.bind(1, id);
  if (s.step()) return read_ref(s);
  return std::nullopt;
}

std::optional<Reference> Catalogue::find_hash(const std::string& content_hash) const {
  Statement s(db_, std::string(kSelectRef) + "WHERE content_hash = ? LIMIT 1", path_);
  s.bind(1, content_hash);
  if (s.step()) return read_ref(s);
  return std::nullopt;
}

std::vector<Reference> Catalogue::list() const {
  Statement s(db_, std::string(kSelectRef) + "ORDER BY frame_base", path_);
  std::vector<Reference> out;
  while (s.step()) out.push_back(read_ref(s));
  return out;
}

size_t Catalogue::count() const {
  Statement s(db_, "SELECT COUNT(*) FROM refs", path_);
  s.step();
  return size_t(s.integer(0));
}

std::vector<std::string> Catalogue::segments() const {
  Statement s(db_, "SELECT name FROM segments ORDER BY name", path_);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::vector<FrameRange> Catalogue::removed_ranges() const {
  Statement s(db_, "SELECT frame_base, frame_count FROM removed ORDER BY frame_base", path_);
  std::vector<FrameRange> out;
  while (s.step()) out.push_back({uint64_t(s.integer(0)), uint32_t(s.integer(1))});
  return out;
}

std::vector<std::pair<int64_t, std::string>> Catalogue::logo_templates() const {
  Statement s(db_, "SELECT ref_key, data FROM logo_templates ORDER BY ref_key", path_);
  std::vector<std::pair<int64_t, std::string>> out;
  while (s.step()) out.emplace_back(s.integer(0), s.blob(1));
  return out;
}

uint64_t Catalogue::next_frame_base() const {
  auto v = meta("next_frame_base");
  return v ? std::stoull(*v) : 0;
}

std::vector<std::pair<int64_t, std::string>> Catalogue::embeddings() const {
  Statement s(db_, "SELECT ref_key, data FROM embeddings ORDER BY ref_key", path_);
  std::vector<std::pair<int64_t, std::string>> out;
  while (s.step()) out.emplace_back(s.integer(0), s.blob(1));
  return out;
}

std::vector<Catalogue::ModelVectorsRow> Catalogue::model_vectors() const {
  Statement s(db_, "SELECT ref_key, model, starts, data FROM model_vectors ORDER BY ref_key, model",
              path_);
  std::vector<ModelVectorsRow> out;
  while (s.step()) out.push_back({s.integer(0), s.text(1), s.blob(2), s.blob(3)});
  return out;
}

void Catalogue::commit_add(const std::vector<Reference>& refs, const std::string& segment,
                           uint64_t next_frame_base, const std::vector<std::string>& templates,
                           const std::vector<std::string>& embeddings,
                           const std::vector<std::vector<ModelVectorsRow>>& model_vectors) {
  if (!templates.empty() && templates.size() != refs.size())
    throw Error("catalogue " + path_ + ": one logo template slot per reference expected");
  if (!embeddings.empty() && embeddings.size() != refs.size())
    throw Error("catalogue " + path_ + ": one embedding slot per reference expected");
  if (!model_vectors.empty() && model_vectors.size() != refs.size())
    throw Error("catalogue " + path_ + ": one slot of model vectors per reference expected");
  exec("BEGIN IMMEDIATE");
  try {
    for (size_t i = 0; i < refs.size(); ++i) {
      const Reference& r = refs[i];
      Statement s(db_,
                  "INSERT INTO refs(id, title, content_type, source_path, duration_s, "
                  "content_hash, added_at, metadata, frame_base, frame_count) VALUES "
                  "(?,?,?,?,?,?,?,?,?,?)",
                  path_);
      s.bind(1, r.id).bind(2, r.title).bind(3, to_string(r.content_type)).bind(4, r.source_path);
      s.bind(5, r.duration_s).bind(6, r.content_hash).bind(7, r.added_at);
      s.bind(8, r.metadata.dump()).bind(9, int64_t(r.frame_base)).bind(10, int64_t(r.frame_count));
      s.step();
      const int64_t key = int64_t(sqlite3_last_insert_rowid(db_));
      if (!templates.empty() && !templates[i].empty()) {
        Statement t(db_, "INSERT INTO logo_templates(ref_key, data) VALUES (?, ?)", path_);
        t.bind(1, key).bind_blob(2, templates[i]).step();
      }
      if (!embeddings.empty() && !embeddings[i].empty()) {
        Statement t(db_, "INSERT INTO embeddings(ref_key, data) VALUES (?, ?)", path_);
        t.bind(1, key).bind_blob(2, embeddings[i]).step();
      }
      if (!model_vectors.empty())
        for (const ModelVectorsRow& row : model_vectors[i]) {
          Statement t(db_,
                      "INSERT INTO model_vectors(ref_key, model, starts, data) VALUES (?, ?, ?, ?)",
                      path_);
          t.bind(1, key).bind(2, row.model).bind_blob(3, row.starts).bind_blob(4, row.vectors);
          t.step();
        }
    }
    if (!segment.empty()) {
      Statement s(db_, "INSERT INTO segments(name) VALUES (?)", path_);
      s.bind(1, segment).step();
    }
    Statement m(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES ('next_frame_base', ?)",
                path_);
    m.bind(1, std::to_string(next_frame_base)).step();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::vector<Reference> Catalogue::commit_remove(const std::vector<std::string>& ids) {
  std::vector<Reference> removed;
  exec("BEGIN IMMEDIATE");
  try {
    for (const std::string& id : ids) {
      auto r = find_id(id);
      if (!r) continue;
      Statement t(db_, "INSERT OR REPLACE INTO removed(frame_base, frame_count) VALUES (?, ?)",
                  path_);
      t.bind(1, int64_t(r->frame_base)).bind(2, int64_t(r->frame_count)).step();
      Statement d(db_, "DELETE FROM refs WHERE key = ?", path_);
      d.bind(1, r->key).step();
      Statement l(db_, "DELETE FROM logo_templates WHERE ref_key = ?", path_);
      l.bind(1, r->key).step();
      Statement e(db_, "DELETE FROM embeddings WHERE ref_key = ?", path_);
      e.bind(1, r->key).step();
      Statement m(db_, "DELETE FROM model_vectors WHERE ref_key = ?", path_);
      m.bind(1, r->key).step();
      removed.push_back(*r);
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return removed;
}

void Catalogue::commit_compaction(const std::vector<std::string>& new_segments) {
  exec("BEGIN IMMEDIATE");
  try {
    exec("DELETE FROM segments; DELETE FROM removed;");
    for (const std::string& name : new_segments) {
      Statement s(db_, "INSERT INTO segments(name) VALUES (?)", path_);
      s.bind(1, name).step();
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace earmark
