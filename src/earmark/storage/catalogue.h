#pragma once
// Catalogue metadata in SQLite: one row per reference, plus the list of landmark segments and
// the index's settings. SQLite's transactions make the catalogue the commit point of every
// change: segment files are written (atomically) first and only become part of the index when
// the transaction that names them commits.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct sqlite3;

namespace earmark {

enum class ContentType { kMusic, kTrademark, kOther };
std::string to_string(ContentType type);
// Accepts music, trademark (or jingle, logo), other. Throws earmark::Error otherwise.
ContentType parse_content_type(const std::string& text);

struct Reference {
  int64_t key = 0;  // internal row id
  std::string id;   // the caller's id, kept as given
  std::string title;
  ContentType content_type = ContentType::kMusic;
  std::string source_path;
  double duration_s = 0.0;
  std::string content_hash;  // of the decoded audio
  int64_t added_at = 0;      // unix seconds
  nlohmann::json metadata = nlohmann::json::object();
  uint64_t frame_base = 0;  // where the reference starts on the landmark global timeline
  uint32_t frame_count = 0;
};

struct FrameRange {
  uint64_t base = 0;
  uint32_t count = 0;
};

class Catalogue {
 public:
  // Opens or creates the database file. Throws earmark::Error.
  explicit Catalogue(const std::string& path);
  ~Catalogue();
  Catalogue(const Catalogue&) = delete;
  Catalogue& operator=(const Catalogue&) = delete;

  std::optional<std::string> meta(const std::string& key) const;
  void set_meta(const std::string& key, const std::string& value);

  std::optional<Reference> find_id(const std::string& id) const;
  std::optional<Reference> find_hash(const std::string& content_hash) const;
  std::vector<Reference> list() const;
  size_t count() const;
  std::vector<std::string> segments() const;
  std::vector<FrameRange> removed_ranges() const;
  uint64_t next_frame_base() const;
  // (reference key, serialised LogoTemplate) of every reference that has a sound-logo template.
  std::vector<std::pair<int64_t, std::string>> logo_templates() const;
  // (reference key, float32 window vectors) of every reference embedded by the embedding stage.
  std::vector<std::pair<int64_t, std::string>> embeddings() const;

  // (reference key, model kind, float32 window starts in seconds, float32 window vectors) of every
  // reference embedded by a published model (embeddings/clip_model.h).
  struct ModelVectorsRow {
    int64_t reference_key = 0;
    std::string model, starts, vectors;
  };
  std::vector<ModelVectorsRow> model_vectors() const;

  // In one transaction: insert the references and their logo templates (empty: none, else one
  // blob per reference, empty for those without), register the segment holding their landmarks
  // and advance the global timeline.
  // Likewise for embeddings: one blob of float32 window vectors per reference (empty: none); and
  // for the published models' vectors: per reference, its rows (reference_key is ignored).
  void commit_add(const std::vector<Reference>& refs, const std::string& segment,
                  uint64_t next_frame_base, const std::vector<std::string>& templates = {},
                  const std::vector<std::string>& embeddings = {},
                  const std::vector<std::vector<ModelVectorsRow>>& model_vectors = {});
  // Deletes the rows and records their frame ranges as removed until the next compaction.
  std::vector<Reference> commit_remove(const std::vector<std::string>& ids);
  // Swaps the segment list and forgets the removed ranges, in one transaction.
  void commit_compaction(const std::vector<std::string>& new_segments);

 private:
  void exec(const std::string& sql) const;
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace earmark
