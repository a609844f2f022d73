#pragma once
// An Earmark index directory: the SQLite catalogue (the commit point), immutable landmark
// segment files, and a lock file that serialises writers. Readers never lock: segments are
// immutable and the catalogue is read in one consistent snapshot.
//
//   <dir>/catalogue.sqlite   references, segment list, settings, sound-logo templates
//   <dir>/segments/*.emk     landmark segments (see index/segment.h)
//   <dir>/embeddings.faiss   vector search index over the catalogue's embeddings (derived data,
//                            reused while the catalogue's "embedding_index" stamp matches)
//   <dir>/LOCK               flock()ed by add / remove / compact
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "earmark/index/model_vectors.h"
#include "earmark/index/reference_embeddings.h"
#include "earmark/index/segment.h"
#include "earmark/landmarks/landmark_params.h"
#include "earmark/landmarks/triplet.h"
#include "earmark/matching/logo_template.h"
#include "earmark/matching/reference_timeline.h"
#include "earmark/storage/catalogue.h"

namespace earmark {

constexpr int kIndexFormatVersion = 1;

struct NewReference {
  Reference meta;                    // frame_base is assigned by add()
  std::vector<Landmark> landmarks;   // frames local to the reference
  std::vector<ReferencePeak> peaks;  // the dense layer's peaks, frames local to the reference
  std::string logo_template;         // serialised LogoTemplate; empty when it has none
  std::vector<float> embeddings;     // window vectors of the embedding stage; empty without it
  // The published models' windows (embeddings/clip_model.h), by model kind.
  struct ModelWindows {
    std::vector<float> starts;   // seconds
    std::vector<float> vectors;  // windows x dim
  };
  std::map<std::string, ModelWindows> model_windows;
};

struct DatabaseStats {
  size_t references = 0;
  size_t segments = 0;
  size_t entries = 0;
  size_t segment_bytes = 0;
  size_t catalogue_bytes = 0;
  double audio_seconds = 0;
  size_t removed_pending = 0;  // removed references whose landmarks compaction will drop
};

class Database {
 public:
  // Opens an index directory. With `create`, makes it if missing, using `params` (defaults when
  // null). An existing index keeps its own settings; `params` that differ in what a hash means
  // are refused with a message saying which setting differs.
  static std::unique_ptr<Database> open(const std::string& dir, bool create,
                                        const LandmarkParams* params = nullptr);
  ~Database();

  const std::string& dir() const { return dir_; }
  const LandmarkParams& params() const { return params_; }
  Catalogue& catalogue() { return *catalogue_; }

  // Query side: references in timeline order, the timeline and the mapped segments.
  const std::vector<Reference>& references() const { return references_; }
  const ReferenceTimeline& timeline() const { return timeline_; }
  const SegmentSet& index() const { return *segments_; }
  // Sound-logo templates and, for each, the index of its reference in references().
  const std::vector<LogoTemplate>& logo_templates() const { return logos_; }
  const std::vector<size_t>& logo_references() const { return logo_refs_; }

  // Writes one segment with all the landmarks and commits the references in one transaction.
  // Returns the number of entries dropped by the bucket cap.
  size_t add(std::vector<NewReference>& refs);
  std::vector<Reference> remove(const std::vector<std::string>& ids);
  // Merges all segments into one, dropping removed references' landmarks.
  void compact();
  DatabaseStats stats() const;
  // Checks every segment's checksum; returns the names of damaged ones.
  std::vector<std::string> verify() const;

  size_t bucket_cap() const { return bucket_cap_; }

  // The embedding stage: its settings ({"model", "weights_digest", "dim", "window_frames",
  // "hop_frames"}) when the index has one, else null; and the reference vectors.
  const nlohmann::json* embedding_spec() const {
    return embedding_spec_.is_null() ? nullptr : &embedding_spec_;
  }
  const ReferenceEmbeddings* embeddings() const { return embeddings_.get(); }
  // Turns the embedding stage on for an index that has no references yet. Throws earmark::Error
  // for an index that already has references without vectors or another model's vectors.
  void enable_embeddings(const nlohmann::json& spec);
  // The published models the index holds vectors of: kind -> {"weights_digest", "dim",
  // "sample_rate", "window_s", "hop_s"} (empty object: none); and each one's vectors.
  const nlohmann::json& model_specs() const { return model_specs_; }
  const ModelVectors* model_vectors(const std::string& kind) const;
  // Turns published models on for an index that has no references yet (the same models again is
  // fine). Throws earmark::Error for an index that already has references, or other models.
  void enable_models(const nlohmann::json& specs);
  // Position in references() of the reference with this catalogue key (-1: none).
  long reference_index(int64_t key) const;
  // The search index type over the reference vectors, and its settings.
  static VectorIndexOptions embedding_index_options();

 private:
  Database() = default;
  void load();
  void load_model_vectors();
  // Records the settings of a stage (catalogue meta `key`) on an index without references; the
  // same settings again are fine. Messages: "holds vectors of <other>", "built without <stage>;
  // build a new index to use <it>".
  void enable_settings(const std::string& key, const nlohmann::json& settings,
                       const std::string& other, const std::string& stage, const std::string& it);
  std::string segment_path(const std::string& name) const;
  std::string new_segment_name() const;
  void remove_orphan_segments();
  // Writes the vector search index (derived data) when load() had to build it.
  void save_embedding_index();

  std::string dir_;
  LandmarkParams params_;
  size_t bucket_cap_ = 64;
  std::unique_ptr<Catalogue> catalogue_;
  std::vector<Reference> references_;
  ReferenceTimeline timeline_;
  std::unique_ptr<SegmentSet> segments_;
  std::vector<LogoTemplate> logos_;
  std::vector<size_t> logo_refs_;
  nlohmann::json embedding_spec_;
  std::unique_ptr<ReferenceEmbeddings> embeddings_;
  bool embedding_index_saved_ = false;
  nlohmann::json model_specs_ = nlohmann::json::object();
  std::map<std::string, std::unique_ptr<ModelVectors>> model_vectors_;
  std::map<int64_t, size_t> by_key_;
};

// Exclusive advisory lock on <dir>/LOCK for the lifetime of the object.
class WriterLock {
 public:
  explicit WriterLock(const std::string& dir);
  ~WriterLock();

 private:
  int fd_ = -1;
};

}  // namespace earmark
