#include "earmark/engine/database.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "earmark/common/error.h"

namespace fs = std::filesystem;

namespace earmark {

namespace {

constexpr const char* kCatalogueFile = "catalogue.sqlite";
constexpr const char* kEmbeddingIndexFile = "embeddings.faiss";

// Floats of a catalogue blob; throws when it does not hold a whole number of `unit` floats.
std::vector<float> floats_of(const std::string& blob, size_t unit, const std::string& what) {
  if (unit == 0 || blob.size() % (sizeof(float) * unit) != 0) throw Error(what + " are damaged");
  std::vector<float> v(blob.size() / sizeof(float));
  std::memcpy(v.data(), blob.data(), blob.size());
  return v;
}

constexpr const char* kSegmentDir = "segments";
constexpr const char* kSegmentExt = ".emk";

std::string describe_difference(const nlohmann::json& a, const nlohmann::json& b) {
  std::string out;
  for (auto it = a.begin(); it != a.end(); ++it) {
    if (!b.contains(it.key()) || b.at(it.key()) != it.value()) {
      if (!out.empty()) out += ", ";
      out += it.key() + " (index: " + it.value().dump() +
             ", requested: " + (b.contains(it.key()) ? b.at(it.key()).dump() : "missing") + ")";
    }
  }
  return out;
}

}  // namespace

WriterLock::WriterLock(const std::string& dir) {
  std::string path = (fs::path(dir) / "LOCK").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("cannot open lock file " + path + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    spdlog::info("waiting for another writer of {}", dir);
    if (::flock(fd_, LOCK_EX) != 0) {
      ::close(fd_);
      throw Error("cannot lock " + path + ": " + std::strerror(errno));
    }
  }
}

WriterLock::~WriterLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

std::unique_ptr<Database> Database::open(const std::string& dir, bool create,
                                         const LandmarkParams* params) {
  std::unique_ptr<Database> db(new Database());
  db->dir_ = dir;
  const fs::path catalogue_path = fs::path(dir) / kCatalogueFile;
  std::error_code ec;
  if (!fs::exists(catalogue_path, ec)) {
    if (!create) throw Error("no Earmark index at " + dir + " (create one with `earmark index`)");
    if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
      throw Error("cannot create index: " + dir + " exists and is not a directory");
    fs::create_directories(fs::path(dir) / kSegmentDir, ec);
    if (ec) throw Error("cannot create index directory " + dir + ": " + ec.message());
  }
  fs::create_directories(fs::path(dir) / kSegmentDir, ec);
  db->catalogue_ = std::make_unique<Catalogue>(catalogue_path.string());
  Catalogue& cat = *db->catalogue_;
  auto version = cat.meta("format_version");
  auto stored = cat.meta("landmark_params");
  if (!stored) {
    LandmarkParams p = params ? *params : LandmarkParams();
    p.validate();
    cat.set_meta("format_version", std::to_string(kIndexFormatVersion));
    cat.set_meta("landmark_params", p.to_json().dump());
    db->params_ = p;
  } else {
    if (version && std::stoi(*version) != kIndexFormatVersion)
      throw Error("index " + dir + " has format version " + *version + ", this build reads " +
                  std::to_string(kIndexFormatVersion));
    try {
      db->params_ = LandmarkParams::from_json(nlohmann::json::parse(*stored));
    } catch (const nlohmann::json::exception& e) {
      throw Error("index " + dir + " has unreadable settings: " + e.what());
    }
    if (params) {
      auto want = params->hash_identity(), have = db->params_.hash_identity();
      if (want != have)
        throw Error("index " + dir +
                    " was built with other landmark settings: " + describe_difference(have, want));
    }
  }
  if (auto cap = cat.meta("bucket_cap")) db->bucket_cap_ = std::stoul(*cap);
  db->load();
  return db;
}

Database::~Database() = default;

std::string Database::segment_path(const std::string& name) const {
  return (fs::path(dir_) / kSegmentDir / name).string();
}

std::string Database::new_segment_name() const {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  std::random_device rd;
  char buf[64];
  std::snprintf(buf, sizeof buf, "seg-%013lld-%08x%s",
                (long long)std::chrono::duration_cast<std::chrono::milliseconds>(now).count(),
                unsigned(rd()), kSegmentExt);
  return buf;
}

void Database::load() {
  references_ = catalogue_->list();
  timeline_ = ReferenceTimeline();
  for (size_t i = 0; i < references_.size(); ++i)
    timeline_.add(references_[i].frame_base, references_[i].frame_count, i);
  segments_ = std::make_unique<SegmentSet>();
  const nlohmann::json identity = params_.hash_identity();
  for (const std::string& name : catalogue_->segments()) {
    auto seg = std::make_unique<Segment>(segment_path(name));
    if (seg->settings().value("hash", nlohmann::json()) != identity)
      throw Error("index segment " + seg->path() +
                  " was written with other landmark settings than its catalogue");
    segments_->add(std::move(seg));
  }
  logos_.clear();
  logo_refs_.clear();
  by_key_.clear();
  for (size_t i = 0; i < references_.size(); ++i) by_key_[references_[i].key] = i;
  embedding_spec_ = nlohmann::json();
  embeddings_.reset();
  if (auto spec = catalogue_->meta("embedding")) {
    embedding_spec_ = nlohmann::json::parse(*spec, nullptr, false);
    if (embedding_spec_.is_discarded() || !embedding_spec_.is_object())
      throw Error("index " + dir_ + " has unreadable embedding settings");
    const int dim = embedding_spec_.value("dim", 0);
    const int hop = embedding_spec_.value("hop_frames", 0);
    if (dim < 2 || hop < 1) throw Error("index " + dir_ + " has bad embedding settings");
    embeddings_ = std::make_unique<ReferenceEmbeddings>(dim, hop * 0.01, embedding_index_options());
    for (auto& [key, blob] : catalogue_->embeddings()) {
      if (!by_key_.count(key)) continue;
      embeddings_->add(uint32_t(key),
                       floats_of(blob, size_t(dim),
                                 "index " + dir_ + ": embeddings of reference " +
                                     references_[by_key_.at(key)].id),
                       references_[by_key_.at(key)].frame_base);
    }
    // The search index is derived data: the saved one is continued with the references added
    // (and removed) since it was saved, else rebuilt; either is saved by the next writer.
    const std::string ann = (fs::path(dir_) / kEmbeddingIndexFile).string();
    embedding_index_saved_ = false;
    bool resumed = false;
    const auto saved = catalogue_->meta("embedding_index");
    if (saved && !saved->empty() && fs::exists(ann)) {
      try {
        embedding_index_saved_ =
            !embeddings_->resume(VectorIndex::load(ann, false, embedding_index_options()), *saved);
        resumed = true;
      } catch (const Error& e) {
        spdlog::warn("{}: {}; rebuilding it", ann, e.what());
      }
    }
    if (!resumed) {
      if (embeddings_->vectors() == 0 && !references_.empty())
        spdlog::info("building the vector index of {} (saved by the next change to the index)",
                     dir_);
      embeddings_->finish();
    }
  }
  load_model_vectors();
  for (const auto& [key, blob] : catalogue_->logo_templates()) {
    auto it = by_key_.find(key);
    if (it == by_key_.end()) continue;
    try {
      logos_.push_back(LogoTemplate::parse(blob));
    } catch (const Error& e) {
      throw Error("index " + dir_ + ": reference " + references_[it->second].id + ": " + e.what());
    }
    logo_refs_.push_back(it->second);
  }
}

void Database::load_model_vectors() {
  model_specs_ = nlohmann::json::object();
  model_vectors_.clear();
  const auto specs = catalogue_->meta("models");
  if (!specs) return;
  model_specs_ = nlohmann::json::parse(*specs, nullptr, false);
  if (model_specs_.is_discarded() || !model_specs_.is_object())
    throw Error("index " + dir_ + " has unreadable model settings");
  // Exact search: the published models' vectors are few (one per 2 s by default) and wide.
  VectorIndexOptions flat;
  flat.type = "flat";
  for (const auto& [kind, spec] : model_specs_.items()) {
    const int dim = spec.value("dim", 0);
    if (dim < 2) throw Error("index " + dir_ + " has bad settings for model " + kind);
    model_vectors_[kind] = std::make_unique<ModelVectors>(kind, dim, flat);
  }
  for (auto& row : catalogue_->model_vectors()) {
    auto ref = by_key_.find(row.reference_key);
    auto model = model_vectors_.find(row.model);
    if (ref == by_key_.end() || model == model_vectors_.end()) continue;
    const std::string what =
        "index " + dir_ + ": " + row.model + " vectors of reference " + references_[ref->second].id;
    model->second->add(uint32_t(row.reference_key), floats_of(row.starts, 1, what),
                       floats_of(row.vectors, size_t(model->second->dim()), what));
  }
  for (auto& [kind, vectors] : model_vectors_) vectors->finish();
}

const ModelVectors* Database::model_vectors(const std::string& kind) const {
  auto it = model_vectors_.find(kind);
  return it == model_vectors_.end() ? nullptr : it->second.get();
}

void Database::enable_models(const nlohmann::json& specs) {
  enable_settings("models", specs, "other models or settings", "the published models", "them");
}

void Database::enable_settings(const std::string& key, const nlohmann::json& settings,
                               const std::string& other, const std::string& stage,
                               const std::string& it) {
  WriterLock lock(dir_);
  if (auto have = catalogue_->meta(key)) {
    if (nlohmann::json::parse(*have, nullptr, false) != settings)
      throw Error("index " + dir_ + " holds vectors of " + other + " (" + *have + ")");
    return;
  }
  if (catalogue_->count() > 0)
    throw Error("index " + dir_ + " was built without " + stage + "; build a new index to use " +
                it);
  catalogue_->set_meta(key, settings.dump());
  load();
}

void Database::remove_orphan_segments() {
  // Files no committed transaction names: left by a writer that was killed mid-way.
  std::set<std::string> live;
  for (const std::string& n : catalogue_->segments()) live.insert(n);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(dir_) / kSegmentDir, ec)) {
    std::string name = entry.path().filename().string();
    if (!live.count(name)) {
      spdlog::debug("removing unreferenced file {}", entry.path().string());
      fs::remove(entry.path(), ec);
    }
  }
}

size_t Database::add(std::vector<NewReference>& refs) {
  if (refs.empty()) return 0;
  WriterLock lock(dir_);
  remove_orphan_segments();
  // Another writer may have committed since we opened: continue its timeline.
  uint64_t base = catalogue_->next_frame_base();
  std::vector<IndexEntry> entries;
  std::vector<ReferencePeak> peaks;
  size_t total = 0, total_peaks = 0;
  for (const NewReference& r : refs) total += r.landmarks.size(), total_peaks += r.peaks.size();
  entries.reserve(total);
  peaks.reserve(total_peaks);
  std::vector<Reference> metas;
  std::vector<std::string> templates, embeddings;
  std::vector<std::vector<Catalogue::ModelVectorsRow>> model_rows;
  for (NewReference& r : refs) {
    model_rows.emplace_back();
    for (const auto& [kind, spec] : model_specs_.items()) {
      auto it = r.model_windows.find(kind);
      if (it == r.model_windows.end())
        throw Error("index " + dir_ + " holds " + kind + " vectors: " + r.meta.id + " has none");
      const auto& w = it->second;
      if (w.vectors.size() != w.starts.size() * spec.value("dim", size_t(0)))
        throw Error("index " + dir_ + ": " + r.meta.id + " has " + std::to_string(w.starts.size()) +
                    " " + kind + " windows but " + std::to_string(w.vectors.size()) + " values");
      model_rows.back().push_back(
          {0, kind,
           std::string(reinterpret_cast<const char*>(w.starts.data()), w.starts.size() * 4),
           std::string(reinterpret_cast<const char*>(w.vectors.data()), w.vectors.size() * 4)});
    }
    templates.push_back(r.logo_template);
    if (embedding_spec() && r.embeddings.empty())
      throw Error("index " + dir_ + " has the embedding stage: " + r.meta.id + " has no vectors");
    embeddings.emplace_back(reinterpret_cast<const char*>(r.embeddings.data()),
                            r.embeddings.size() * sizeof(float));
    r.meta.frame_base = base;
    for (const Landmark& l : r.landmarks) {
      if (l.frame >= r.meta.frame_count) continue;
      entries.push_back({l.key, uint32_t(base + l.frame), l.pitch_code});
    }
    for (const ReferencePeak& p : r.peaks)
      if (p.frame < r.meta.frame_count) peaks.push_back({uint32_t(base + p.frame), p.pitch});
    base += uint64_t(r.meta.frame_count) + ReferenceTimeline::kGapFrames;
    if (base > 0xffffffffULL)
      throw Error("index " + dir_ + " is full: its 32-bit timeline holds about 11,900 hours");
    metas.push_back(r.meta);
  }
  nlohmann::json settings = {{"hash", params_.hash_identity()}, {"landmarks", params_.to_json()}};
  std::string name = new_segment_name();
  SegmentWriteStats ws = write_segment(segment_path(name), entries, peaks, settings, bucket_cap_);
  catalogue_->commit_add(metas, name, base, templates, embeddings, model_rows);
  load();
  save_embedding_index();
  return ws.capped_entries;
}

void Database::enable_embeddings(const nlohmann::json& spec) {
  enable_settings("embedding", spec, "another embedding model", "the embedding stage", "it");
}

VectorIndexOptions Database::embedding_index_options() {
  // HNSW: on the development catalogue (25,410 vectors) it keeps 99 % of the exact 16 nearest
  // at efSearch 128 and 93 % at 32, with the same top-1, and cuts a 10 s query from 189 ms
  // (exact search) to 81-111 ms. IVF-Flat and IVF-PQ were as fast but kept 83 % and 59 %.
  VectorIndexOptions o;
  o.type = "hnsw";
  o.hnsw_ef_search = 64;
  // A query's windows are searched in one batch, split between the cores.
  o.search_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  return o;
}

void Database::save_embedding_index() {
  if (!embeddings_ || embedding_index_saved_ || embeddings_->vectors() == 0) return;
  const std::string ann = (fs::path(dir_) / kEmbeddingIndexFile).string();
  embeddings_->index().save(ann);
  catalogue_->set_meta("embedding_index", embeddings_->coverage());
  embedding_index_saved_ = true;
}

long Database::reference_index(int64_t key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? -1 : long(it->second);
}

std::vector<Reference> Database::remove(const std::vector<std::string>& ids) {
  WriterLock lock(dir_);
  auto removed = catalogue_->commit_remove(ids);
  load();
  save_embedding_index();
  return removed;
}

void Database::compact() {
  WriterLock lock(dir_);
  load();
  remove_orphan_segments();
  const auto old_names = catalogue_->segments();
  // Only landmarks and peaks of references still in the catalogue survive.
  std::vector<IndexEntry> entries;
  std::vector<ReferencePeak> peaks;
  entries.reserve(segments_->size());
  for (const auto& seg : segments_->segments()) {
    for (size_t i = 0; i < seg->size(); ++i) {
      IndexEntry e = seg->entry(i);
      if (timeline_.find(e.frame)) entries.push_back(e);
    }
    for (size_t i = 0; i < seg->num_peaks(); ++i) {
      ReferencePeak p = seg->peak(i);
      if (timeline_.find(p.frame)) peaks.push_back(p);
    }
  }
  std::vector<std::string> names;
  if (!entries.empty()) {
    nlohmann::json settings = {{"hash", params_.hash_identity()}, {"landmarks", params_.to_json()}};
    std::string name = new_segment_name();
    write_segment(segment_path(name), entries, peaks, settings, bucket_cap_);
    names.push_back(name);
  }
  catalogue_->commit_compaction(names);
  // A graph index keeps removed references' windows (hidden); compaction builds it afresh.
  if (embedding_spec()) catalogue_->set_meta("embedding_index", "");
  segments_.reset();  // unmap before deleting
  std::error_code ec;
  for (const std::string& n : old_names) fs::remove(segment_path(n), ec);
  load();
  save_embedding_index();
}

DatabaseStats Database::stats() const {
  DatabaseStats s;
  s.references = references_.size();
  s.segments = segments_->segments().size();
  s.entries = segments_->size();
  for (const auto& seg : segments_->segments()) s.segment_bytes += seg->file_bytes();
  std::error_code ec;
  s.catalogue_bytes = size_t(fs::file_size(fs::path(dir_) / kCatalogueFile, ec));
  for (const Reference& r : references_) s.audio_seconds += r.duration_s;
  s.removed_pending = catalogue_->removed_ranges().size();
  return s;
}

std::vector<std::string> Database::verify() const {
  std::vector<std::string> bad;
  for (const auto& seg : segments_->segments())
    if (!seg->verify()) bad.push_back(seg->path());
  return bad;
}

}  // namespace earmark
