#include "earmark/engine/indexer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "earmark/common/checksum.h"
#include "earmark/common/error.h"
#include "earmark/decode/audio_decoder.h"
#include "earmark/embeddings/fingerprint_net.h"
#include "earmark/embeddings/window_embedder.h"
#include "earmark/landmarks/landmark_extractor.h"
#include "earmark/matching/logo_template.h"

namespace earmark {

namespace {

// Digest of decoded audio: two independent 64-bit FNV-1a streams over the samples rounded to
// 16 bits, fed block by block. Decoding the same file twice gives the same digest, and a
// collision needs both halves to collide.
class AudioDigest {
 public:
  void update(const float* x, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      int32_t q = int32_t(std::lround(std::clamp(x[i], -1.0f, 1.0f) * 32767.0f));
      for (int k = 0; k < 2; ++k) {
        uint8_t byte = uint8_t(q >> (8 * k));
        a_ = (a_ ^ byte) * 0x100000001b3ULL;
        b_ = (b_ ^ uint8_t(byte + 0x5bU)) * 0x100000001b3ULL;
      }
    }
  }
  std::string hex() const {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", (unsigned long long)a_,
                  (unsigned long long)b_);
    return buf;
  }

 private:
  uint64_t a_ = 0xcbf29ce484222325ULL, b_ = 0x84222325cbf29ce4ULL;
};

// Streams decoded audio into the landmark extractors (one per layer), the digest and, for a short
// reference, its logo template: memory stays bounded by the landmarks, whatever the length of
// the recording.
class ReferenceConsumer : public AudioConsumer {
 public:
  ReferenceConsumer(const std::vector<LandmarkParams>& layers, std::vector<Landmark>& out,
                    std::vector<ReferencePeak>& peaks)
      : quantizer_(layers.front()),
        out_(out),
        extractor_(
            layers,
            [this](const TripletDescriptor& d) {
              out_.push_back(
                  {quantizer_.key(d), uint32_t(d.frame), TripletQuantizer::pitch_code(d.pitch)});
            },
            [this](int, const float* log_power) {
              if (logo_) logo_->push_frame(log_power);
            },
            // The dense layer's peaks, kept to verify alignments against (see PeakVerifier).
            [&peaks](const std::vector<SpectralPeak>& picked, int) {
              for (const SpectralPeak& p : picked)
                peaks.push_back(ReferencePeak::at(uint32_t(p.frame), p.pitch));
            }),
        layered_(layers.size() > 1) {}
  // Short references (sound logos) also get a template for dense matching.
  void build_logo_template(const LandmarkParams& params) {
    logo_ = std::make_unique<LogoTemplate::Builder>(params);
  }
  // The embedding stage's windows, embedded as the audio streams by.
  void embed_with(Embedder& embedder, int hop_frames) {
    windows_ = std::make_unique<WindowEmbedder>(embedder, hop_frames, 128);
  }
  void consume(const float* x, size_t n) override {
    digest_.update(x, n);
    extractor_.consume(x, n);
    if (windows_) windows_->consume(x, n);
    samples_ += n;
  }
  std::vector<float> embeddings() {
    if (!windows_) return {};
    windows_->finish();
    return windows_->vectors();
  }
  std::optional<LogoTemplate> logo_template() { return logo_ ? logo_->finish() : std::nullopt; }
  void finish() {
    extractor_.finish();
    if (layered_) {
      // Layers share many triplets; one index entry each is enough.
      std::sort(out_.begin(), out_.end(), [](const Landmark& a, const Landmark& b) {
        return a.frame != b.frame ? a.frame < b.frame : a.key < b.key;
      });
      out_.erase(std::unique(out_.begin(), out_.end(),
                             [](const Landmark& a, const Landmark& b) {
                               return a.frame == b.frame && a.key == b.key;
                             }),
                 out_.end());
    }
  }
  size_t samples() const { return samples_; }
  std::string digest() const { return digest_.hex(); }

 private:
  TripletQuantizer quantizer_;
  std::vector<Landmark>& out_;
  LayeredExtractor extractor_;
  bool layered_;
  AudioDigest digest_;
  std::unique_ptr<LogoTemplate::Builder> logo_;
  std::unique_ptr<WindowEmbedder> windows_;
  size_t samples_ = 0;
};

struct Work {
  IndexResult result;
  std::optional<NewReference> ref;
};

// A worker's published models, with the windows the index records for each.
struct WorkerModel {
  std::unique_ptr<ClipModel> model;
  ClipWindows windows;
};

// The recording's windows under a published model, decoded again at the model's own rate (the
// 16 kHz stream has nothing above 8 kHz) and without level normalisation (the originals do none).
NewReference::ModelWindows model_windows(const std::string& path, WorkerModel& m) {
  DecodeOptions opts;
  opts.sample_rate = m.model->sample_rate();
  opts.normalise = false;
  AudioDecoder decoder(path, opts);
  struct Feed : AudioConsumer {
    ClipStream stream;
    Feed(ClipModel& model, const ClipWindows& w) : stream(model, w) {}
    void consume(const float* x, size_t n) override { stream.consume(x, n); }
  } feed(*m.model, m.windows);
  decoder.run(feed);
  ClipEmbedding e = feed.stream.finish();
  return {e.starts_s(), std::move(e.vectors)};
}

Work fingerprint(const IndexRequest& req, const LandmarkParams& params, Embedder* embedder,
                 int hop_frames, std::vector<WorkerModel>& models) {
  Work w;
  w.result.request = req;
  std::string stem = std::filesystem::path(req.path).stem().string();
  if (w.result.request.id.empty()) w.result.request.id = stem;
  if (w.result.request.title.empty()) w.result.request.title = stem;
  try {
    DecodeOptions opts;
    opts.sample_rate = params.sample_rate;
    // Peaks of a log spectrum do not depend on level; a gain that moves with the signal's
    // history would (it reshapes attacks differently in reference and query).
    opts.normalise = false;
    NewReference ref;
    AudioDecoder decoder(req.path, opts);
    const bool trademark = req.content_type == ContentType::kTrademark;
    const double duration = decoder.info().duration_s;
    ReferenceConsumer consumer(params.reference_layers(duration, trademark), ref.landmarks,
                               ref.peaks);
    if (params.is_short(duration, trademark)) consumer.build_logo_template(params);
    if (embedder) consumer.embed_with(*embedder, hop_frames);
    decoder.run(consumer);
    consumer.finish();
    ref.embeddings = consumer.embeddings();
    if (auto logo = consumer.logo_template()) ref.logo_template = logo->serialise();
    const size_t samples = consumer.samples();
    if (samples < size_t(params.sample_rate) / 4)
      throw Error(req.path + ": too short to fingerprint (" +
                  std::to_string(samples * 1000 / params.sample_rate) + " ms of audio)");
    for (WorkerModel& m : models) ref.model_windows[m.model->kind()] = model_windows(req.path, m);
    ref.meta.id = w.result.request.id;
    ref.meta.title = w.result.request.title;
    ref.meta.content_type = req.content_type;
    ref.meta.source_path = std::filesystem::absolute(req.path).lexically_normal().string();
    ref.meta.duration_s = double(samples) / params.sample_rate;
    ref.meta.content_hash = consumer.digest();
    ref.meta.metadata = req.metadata;
    ref.meta.added_at = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    ref.meta.frame_count = uint32_t(samples / params.hop + 1);
    w.result.duration_s = ref.meta.duration_s;
    w.result.landmarks = ref.landmarks.size();
    w.ref = std::move(ref);
  } catch (const std::exception& e) {
    w.result.outcome = IndexOutcome::kFailed;
    w.result.message = e.what();
  }
  return w;
}

}  // namespace

std::string file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  uint64_t h = kFnvSeed;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    h = fnv1a(h, buf, size_t(in.gcount()));
    if (!in) break;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  return hex;
}

nlohmann::json model_spec_of(const ClipModel& model, const std::string& weights,
                             const ClipWindows& windows) {
  return {{"weights_digest", file_digest(weights)},
          {"dim", model.dim()},
          {"sample_rate", model.sample_rate()},
          {"window_s", windows.window_s},
          {"hop_s", windows.hop_s}};
}

ClipWindows model_windows_of(const nlohmann::json& spec) {
  return {spec.value("window_s", 4.0), spec.value("hop_s", 2.0)};
}

nlohmann::json embedding_spec_of(const Embedder& embedder, const std::string& weights,
                                 int hop_frames) {
  // The weights' identity: a digest of the file, so retrained weights of the same shape are told
  // apart from the ones the index holds.
  return {{"model", embedder.name()},
          {"weights_digest", file_digest(weights)},
          {"dim", embedder.dim()},
          {"window_frames", embedder.window_frames()},
          {"hop_frames", hop_frames}};
}

std::string audio_content_hash(const std::vector<float>& samples) {
  AudioDigest d;
  d.update(samples.data(), samples.size());
  return d.hex();
}

IndexSummary index_files(Database& db, const std::vector<IndexRequest>& requests,
                         const IndexOptions& options) {
  IndexSummary summary;
  const size_t total = requests.size();
  const LandmarkParams params = db.params();
  const int threads = std::max(1, std::min<int>(options.threads, int(total)));

  // Workers fingerprint in parallel; this thread consumes results in request order so the
  // catalogue order (and the timeline) does not depend on scheduling.
  std::mutex mu;
  std::condition_variable cv;
  std::map<size_t, Work> ready;
  std::atomic<size_t> next{0};
  const size_t max_ahead = size_t(threads) * 4;  // bounds memory held in finished work
  size_t consumed = 0;
  // The embedding stage: one network per worker (an Embedder is not thread-safe), checked
  // against the model the index was built with.
  const nlohmann::json* spec = db.embedding_spec();
  if (spec && options.embedding_weights.empty())
    throw Error("index " + db.dir() + " has the embedding stage: weights are needed");
  std::vector<std::unique_ptr<Embedder>> embedders;
  if (spec) {
    for (int t = 0; t < threads; ++t) {
      embedders.push_back(load_fingerprint_net(options.embedding_weights, 1));
      if (t == 0 && embedding_spec_of(*embedders[0], options.embedding_weights,
                                      spec->value("hop_frames", 0)) != *spec)
        throw Error("index " + db.dir() + " was embedded with another model: " + spec->dump());
    }
  }
  const int hop_frames = spec ? spec->value("hop_frames", 50) : 0;
  // The published models the index holds: one of each per worker, checked against the index.
  std::vector<std::vector<WorkerModel>> models(static_cast<size_t>(threads));
  for (const auto& [kind, model_spec] : db.model_specs().items()) {
    auto choice = std::find_if(options.models.begin(), options.models.end(),
                               [&](const ModelChoice& c) { return c.kind == kind; });
    if (choice == options.models.end())
      throw Error("index " + db.dir() + " holds " + kind + " vectors: give --model " + kind +
                  "=PATH (" + ClipModel::how_to_get(kind) + ")");
    const ClipWindows windows = model_windows_of(model_spec);
    for (int t = 0; t < threads; ++t) {
      models[size_t(t)].push_back({ClipModel::load(kind, choice->weights, 1), windows});
      if (t == 0 && model_spec_of(*models[0].back().model, choice->weights, windows) != model_spec)
        throw Error("index " + db.dir() + " was embedded with other " + kind +
                    " weights or windows: " + model_spec.dump());
    }
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      Embedder* embedder = spec ? embedders[size_t(t)].get() : nullptr;
      for (;;) {
        size_t i;
        {
          std::unique_lock<std::mutex> lk(mu);
          cv.wait(lk, [&] { return next.load() < consumed + max_ahead || next.load() >= total; });
          i = next++;
        }
        if (i >= total) return;
        Work w = fingerprint(requests[i], params, embedder, hop_frames, models[size_t(t)]);
        std::lock_guard<std::mutex> lk(mu);
        ready.emplace(i, std::move(w));
        cv.notify_all();
      }
    });
  }

  std::vector<NewReference> batch;
  std::map<std::string, std::string> batch_hashes;  // hash -> id, for duplicates inside a run
  std::map<std::string, bool> batch_ids;
  size_t batch_entries = 0;
  auto commit = [&] {
    if (batch.empty()) return;
    summary.capped_entries += db.add(batch);
    batch.clear();
    batch_hashes.clear();
    batch_ids.clear();
    batch_entries = 0;
  };

  // Workers must be joined on every path out, or an exception here would terminate.
  auto stop_workers = [&] {
    {
      std::lock_guard<std::mutex> lk(mu);
      next = total;
      consumed = total;
    }
    cv.notify_all();
    for (auto& t : pool)
      if (t.joinable()) t.join();
  };
  try {
    for (size_t i = 0; i < total; ++i) {
      Work w;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return ready.count(i) > 0; });
        w = std::move(ready.at(i));
        ready.erase(i);
        consumed = i + 1;
        cv.notify_all();
      }
      IndexResult& r = w.result;
      if (w.ref) {
        const Reference& meta = w.ref->meta;
        auto by_id = db.catalogue().find_id(meta.id);
        auto by_hash = db.catalogue().find_hash(meta.content_hash);
        if (by_hash || batch_hashes.count(meta.content_hash)) {
          std::string holder = by_hash ? by_hash->id : batch_hashes[meta.content_hash];
          r.outcome = IndexOutcome::kAlreadyPresent;
          r.message = holder == meta.id ? "already indexed" : "same audio as reference " + holder;
        } else if (by_id || batch_ids.count(meta.id)) {
          r.outcome = IndexOutcome::kFailed;
          r.message = "id '" + meta.id + "' is already used by other audio (remove it first)";
        } else {
          r.outcome = IndexOutcome::kAdded;
          batch_hashes[meta.content_hash] = meta.id;
          batch_ids[meta.id] = true;
          batch_entries += w.ref->landmarks.size();
          summary.audio_seconds += meta.duration_s;
          batch.push_back(std::move(*w.ref));
        }
      }
      switch (r.outcome) {
        case IndexOutcome::kAdded:
          ++summary.added;
          break;
        case IndexOutcome::kAlreadyPresent:
          ++summary.present;
          break;
        case IndexOutcome::kFailed:
          ++summary.failed;
          break;
      }
      if (options.progress) options.progress(i + 1, total, r);
      summary.results.push_back(std::move(r));
      if (batch_entries >= options.batch_entries) commit();
    }
  } catch (...) {
    stop_workers();
    throw;
  }
  stop_workers();
  commit();
  return summary;
}

}  // namespace earmark
