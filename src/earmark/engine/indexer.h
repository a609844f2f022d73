#pragma once
// Adds reference recordings to an index: decodes and fingerprints files in parallel, skips audio
// that is already catalogued, and commits them in batches (each batch one segment).
#include <functional>
#include <string>
#include <vector>

#include "earmark/embeddings/clip_model.h"
#include "earmark/embeddings/embedder.h"
#include "earmark/engine/database.h"

namespace earmark {

struct IndexRequest {
  std::string id;  // empty: the file name without extension
  std::string path;
  std::string title;  // empty: the file name without extension
  ContentType content_type = ContentType::kMusic;
  nlohmann::json metadata = nlohmann::json::object();
};

enum class IndexOutcome { kAdded, kAlreadyPresent, kFailed };

struct IndexResult {
  IndexRequest request;
  IndexOutcome outcome = IndexOutcome::kFailed;
  std::string message;  // why it failed, or which reference already holds this audio
  double duration_s = 0;
  size_t landmarks = 0;
};

struct IndexOptions {
  int threads = 2;
  size_t batch_entries = 8u << 20;  // landmarks per segment before a commit
  // Weights of the embedding stage's network, needed when the index has that stage.
  std::string embedding_weights;
  // Weights of the published models, needed for those the index holds (Database::model_specs()).
  std::vector<ModelChoice> models;
  // Called from the calling thread after each file: (done, total, result).
  std::function<void(size_t, size_t, const IndexResult&)> progress;
};

struct IndexSummary {
  std::vector<IndexResult> results;
  size_t added = 0, present = 0, failed = 0;
  double audio_seconds = 0;
  size_t capped_entries = 0;
};

IndexSummary index_files(Database& db, const std::vector<IndexRequest>& requests,
                         const IndexOptions& options = {});

// The embedding settings an index records for a network, its weight file and the reference hop.
nlohmann::json embedding_spec_of(const Embedder& embedder, const std::string& weights,
                                 int hop_frames);

// The settings an index records for a published model: {"weights_digest", "dim",
// "sample_rate", "window_s", "hop_s"}.
nlohmann::json model_spec_of(const ClipModel& model, const std::string& weights,
                             const ClipWindows& windows);

// The windows a model's recorded settings say.
ClipWindows model_windows_of(const nlohmann::json& spec);

// Hex digest of a file's bytes (weights told apart by content).
std::string file_digest(const std::string& path);

// Hex digest of decoded audio, for "same audio" detection.
std::string audio_content_hash(const std::vector<float>& samples);

}  // namespace earmark
