#include "earmark/engine/scanner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>

#include "earmark/common/error.h"
#include "earmark/decode/audio_decoder.h"
#include "earmark/embeddings/fingerprint_net.h"
#include "earmark/embeddings/window_embedder.h"
#include "earmark/engine/indexer.h"
#include "earmark/landmarks/landmark_extractor.h"
#include "earmark/matching/peak_verifier.h"

namespace earmark {

namespace {

using Clock = std::chrono::steady_clock;

// Two matches of one reference whose query spans overlap: one occurrence, seen twice.
bool same_occurrence(const ScanMatch& a, const ScanMatch& b) {
  return a.ref_id == b.ref_id &&
         std::min(a.query_end, b.query_end) > std::max(a.query_start, b.query_start);
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Feeds the extractor and keeps the time spent downstream of the decoder, so decoding time can
// be told apart from fingerprinting time in a streaming pipeline.
class QueryConsumer : public AudioConsumer {
 public:
  // No matcher: the landmark and logo stages are off (the embedding stage alone).
  QueryConsumer(const std::vector<LandmarkParams>& layers, LandmarkMatcher* matcher,
                PeakVerifier* verifier, ContrastSpectrogram* contrast,
                LogoPeakMatcher* constellations, WindowEmbedder* windows)
      : contrast_(contrast), windows_(windows) {
    if (matcher)
      extractor_ = std::make_unique<LayeredExtractor>(
          layers, [matcher](const TripletDescriptor& d) { matcher->add(d); },
          [contrast](int, const float* log_power) {
            if (contrast) contrast->push_frame(log_power);
          },
          [constellations, verifier](const std::vector<SpectralPeak>& peaks, int watermark) {
            if (constellations) constellations->push_peaks(peaks, watermark);
            if (verifier) verifier->add_query_peaks(peaks);
          });
  }
  void consume(const float* x, size_t n) override {
    auto t0 = Clock::now();
    if (extractor_) extractor_->consume(x, n);
    if (windows_) {
      // The embedding waits until the landmarks have had their say (most queries they settle);
      // past 20 minutes of audio it streams, so memory stays bounded.
      if (streaming_) {
        windows_->consume(x, n);
      } else {
        deferred_.insert(deferred_.end(), x, x + n);
        if (deferred_.size() > kDeferLimit) {
          streaming_ = true;
          windows_->consume(deferred_.data(), deferred_.size());
          deferred_.clear();
          deferred_.shrink_to_fit();
        }
      }
    }
    samples_ += n;
    downstream_ms_ += ms_since(t0);
  }
  void finish() {
    auto t0 = Clock::now();
    if (extractor_) extractor_->finish();
    if (contrast_) contrast_->finish();
    downstream_ms_ += ms_since(t0);
  }
  size_t samples() const { return samples_; }
  double downstream_ms() const { return downstream_ms_; }
  // Whether the query's windows are already (partly) embedded, so that using them is cheap.
  bool streaming() const { return streaming_; }
  // Embeds whatever is still deferred and closes the window stream; returns the seconds of
  // padding embedded before the first sample. A query shorter than kPadBelow is padded at each
  // end with kPad of its own audio, mirrored: its few windows can then sit on the reference
  // windows' grid, which the network needs (it tells apart windows 0.2 s apart), instead of up
  // to half a reference hop off it.
  double embed_now() {
    if (!windows_) return 0;
    double lead_s = 0;
    const size_t n = deferred_.size(), pad = size_t(kPad * 16000);
    if (!streaming_ && n >= 2 && n < size_t(kPadBelow * 16000)) {
      std::vector<float> padded;
      padded.reserve(n + 2 * pad);
      for (size_t i = 0; i < pad; ++i) padded.push_back(deferred_[std::min(n - 1, pad - i)]);
      padded.insert(padded.end(), deferred_.begin(), deferred_.end());
      for (size_t i = 0; i < pad; ++i) padded.push_back(deferred_[n - 2 - std::min(n - 2, i)]);
      deferred_.swap(padded);
      lead_s = double(pad) / 16000;
    }
    if (!deferred_.empty()) windows_->consume(deferred_.data(), deferred_.size());
    deferred_.clear();
    windows_->finish();
    return lead_s;
  }
  // Embeds the deferred audio into another window stream (another hop), keeping it deferred.
  void embed_into(WindowEmbedder& other) const {
    if (!deferred_.empty()) other.consume(deferred_.data(), deferred_.size());
    other.finish();
  }

 private:
  static constexpr size_t kDeferLimit = size_t(16000) * 60 * 20;
  static constexpr double kPadBelow = 2.0, kPad = 0.2;  // seconds
  std::vector<float> deferred_;
  bool streaming_ = false;
  std::unique_ptr<LayeredExtractor> extractor_;
  ContrastSpectrogram* contrast_;
  WindowEmbedder* windows_;
  size_t samples_ = 0;
  double downstream_ms_ = 0;
};

}  // namespace

Scanner::Scanner(const Database& db, const ScanOptions& options)
    : db_(db), options_(options), query_params_(db.params().for_query()) {
  for (const Reference& r : db.references()) catalogue_hours_ += r.duration_s / 3600.0;
  if (options_.embedding && db.embedding_spec()) {
    const std::string weights = options_.embedding_weights.empty() ? default_fingerprint_weights()
                                                                   : options_.embedding_weights;
    const int threads = options_.embedding_threads > 0
                            ? options_.embedding_threads
                            : int(std::max(1u, std::thread::hardware_concurrency()));
    embedder_ = load_fingerprint_net(weights, threads);
    const nlohmann::json have =
        embedding_spec_of(*embedder_, weights, db.embedding_spec()->value("hop_frames", 0));
    if (have != *db.embedding_spec())
      throw Error("index " + db.dir() + " holds vectors of another embedding model (" +
                  db.embedding_spec()->dump() + "); these weights are " + have.dump());
    if (options_.embedding_hop_frames < 1 || options_.embedding_hop_frames > 100)
      throw Error("the query embedding hop must be 1 to 100 frames");
    if (options_.embedding_coarse_hop_frames < 0 || options_.embedding_coarse_hop_frames > 1000)
      throw Error("the coarse query embedding hop must be 0 (off) to 1000 frames");
    if (!(options_.embedding_refine_share >= 0 && options_.embedding_refine_share <= 1))
      throw Error("the embedding refine share must be in [0, 1]");
    if (options_.embedding_threads < 0 || options_.embedding_threads > 256)
      throw Error("embedding threads must be 0 (one per core) to 256");
    // Positive: scores are rescaled by it onto the landmark scale.
    if (!(options_.embedding_threshold > 0 && options_.embedding_threshold < 10))
      throw Error("the embedding threshold must be in (0, 10)");
    if (!(options_.embedding_threshold_growth >= 0 && options_.embedding_threshold_growth < 1))
      throw Error("the embedding threshold growth must be in [0, 1)");
    if (!(options_.embedding_logo_veto >= -2 && options_.embedding_logo_veto <= 2))
      throw Error("the embedding logo veto must be in [-2, 2] (-2: off)");
  }
  const int model_threads = options_.model_threads > 0
                                ? options_.model_threads
                                : int(std::max(1u, std::thread::hardware_concurrency()));
  for (const ModelChoice& choice : options_.models) {
    if (!db.model_specs().contains(choice.kind)) {
      spdlog::warn("index {} holds no {} vectors; that model is not used", db.dir(), choice.kind);
      continue;
    }
    auto model = ClipModel::load(choice.kind, choice.weights, model_threads);
    const nlohmann::json& spec = db.model_specs().at(choice.kind);
    if (model_spec_of(*model, choice.weights, model_windows_of(spec)) != spec)
      throw Error("index " + db.dir() + " holds " + choice.kind +
                  " vectors of other weights: " + spec.dump());
    clip_models_[choice.kind] = std::move(model);
  }
  if (!(options_.model_min_margin > 0 && options_.model_min_margin < 2))
    throw Error("the model margin threshold must be in (0, 2)");
  if (!options_.landmarks && !embedder_ && clip_models_.empty())
    throw Error(options_.embedding ? "index " + db.dir() +
                                         " holds no vectors: the embedding stage cannot run alone"
                                   : std::string("no stage to scan with"));
  if (options_.max_matches < 1) throw Error("max_matches must be at least 1");
  for (double t : {options_.min_score_music, options_.min_score_trademark, options_.min_score_other,
                   options_.logo.min_score})
    if (!(t >= 0 && t <= 1e6)) throw Error("thresholds must be in [0, 1e6]");
  if (!(options_.threshold_growth >= 0 && options_.threshold_growth <= 10))
    throw Error("threshold growth must be in [0, 10]");
  if (!(options_.constellation.min_score >= 0 && options_.constellation.min_score <= 1e6))
    throw Error("thresholds must be in [0, 1e6]");
  if (!(options_.logo_agreement >= 1 && options_.logo_agreement <= 10))
    throw Error("logo agreement threshold must be in [1, 10]");
  if (options_.logo_templates || options_.logo_constellations)
    for (const LogoTemplate& t : db_.logo_templates()) logos_.push_back(&t);
}

double Scanner::min_score(ContentType type, double query_seconds) const {
  if (type == ContentType::kTrademark) return options_.min_score_trademark;
  const double window_s = options_.match.window_frames * query_params_.frame_seconds();
  const double length = std::clamp(query_seconds, 1.0, std::max(1.0, window_s));
  const double size = std::max(catalogue_hours_, options_.threshold_catalogue_hours);
  return threshold_for(type) + options_.threshold_growth * std::log(length / 3.0) +
         options_.threshold_catalogue_growth * std::log(size / options_.threshold_catalogue_hours);
}

double Scanner::candidate_share() const {
  // Below this share of its own threshold, a logo stage's candidate cannot reach the agreement
  // threshold however close to its threshold the other stage's view is.
  return std::clamp(options_.logo_agreement - 1.0, 0.05, 1.0);
}

double Scanner::threshold_for(ContentType type) const {
  return type == ContentType::kMusic       ? options_.min_score_music
         : type == ContentType::kTrademark ? options_.min_score_trademark
                                           : options_.min_score_other;
}

ScanMatch Scanner::logo_match(size_t logo, double query_start, double length) const {
  const Reference& ref = db_.references().at(db_.logo_references().at(logo));
  ScanMatch s;
  s.ref_id = ref.id;
  s.title = ref.title;
  s.content_type = ref.content_type;
  const double origin = query_params_.frame_time(0);
  // A logo cut off by the start of the query is matched from its middle on.
  s.query_start = std::max(origin, query_start);
  s.ref_start = origin + (s.query_start - query_start);
  s.ref_end = std::min(ref.duration_s, origin + length);
  s.query_end = s.query_start + std::max(0.0, s.ref_end - s.ref_start);
  return s;
}

void Scanner::merge_logo_match(const ScanMatch& s, std::vector<ScanMatch>& matches) {
  // An occurrence found by several stages is reported once: the landmark stage's view carries
  // speed and pitch, the others add their evidence, and it takes the strongest score. Otherwise
  // a family of similar logos (one jingle in several variants) lets a sibling's template
  // outscore the right logo's landmarks.
  for (ScanMatch& m : matches) {
    if (!same_occurrence(m, s)) continue;
    if (s.template_score > m.template_score) {  // the evidence of the best detection
      m.template_score = s.template_score;
      m.correlation = s.correlation;
    }
    if (s.constellation_score > m.constellation_score) {
      m.constellation_score = s.constellation_score;
      m.votes = s.votes;
    }
    m.score = std::max(m.score, s.score);
    return;
  }
  matches.push_back(s);
}

void Scanner::add_logo_matches(const LogoMatcher* templates, const ContrastSpectrogram* contrast,
                               const LogoPeakMatcher* constellations,
                               std::vector<ScanMatch>& matches) const {
  // The matchers report candidates below their thresholds (candidate_share()), so that two weak
  // views of one occurrence can add up to the agreement threshold.
  std::vector<ScanMatch> found;
  if (templates)
    for (const LogoDetection& d : templates->detections()) {
      ScanMatch s =
          logo_match(d.logo, contrast->step_time(d.step), d.steps * contrast->step_seconds());
      s.stage = "template";
      s.template_score = d.score;
      s.correlation = d.correlation;
      found.push_back(s);
    }
  if (constellations)
    for (const LogoPeakDetection& d : constellations->detections()) {
      ScanMatch s = logo_match(d.logo, query_params_.frame_time(d.frame),
                               d.frames * query_params_.frame_seconds());
      s.stage = "constellation";
      s.constellation_score = d.score;
      s.votes = d.votes;
      auto same = std::find_if(found.begin(), found.end(), [&](const ScanMatch& f) {
        return f.stage == "template" && f.constellation_score == 0 && same_occurrence(f, s);
      });
      if (same == found.end()) {
        found.push_back(s);
      } else {
        same->constellation_score = s.constellation_score;
        same->votes = s.votes;
      }
    }
  const double template_threshold = options_.logo.min_score;
  const double constellation_threshold = options_.constellation.min_score;
  for (ScanMatch& s : found) {
    // Each stage's score relative to its threshold (thresholds below 1 are for inspecting weak
    // candidates only; they must not blow the ratios up).
    const double t = s.template_score / std::max(template_threshold, 1.0);
    const double c = s.constellation_score / std::max(constellation_threshold, 1.0);
    const bool agree = t > 0 && c > 0 && t + c >= options_.logo_agreement;
    if (!(s.template_score >= template_threshold && s.template_score > 0) &&
        !(s.constellation_score >= constellation_threshold && s.constellation_score > 0) && !agree)
      continue;
    double strength = std::max(t, c);
    if (agree) strength = std::max(strength, (t + c) / options_.logo_agreement);
    // Onto the landmark scale of its content type, where all the stages' thresholds meet.
    s.score = strength * std::max(threshold_for(s.content_type), 1.0);
    merge_logo_match(s, matches);
  }
}

ScanResult Scanner::scan(const std::string& path) const {
  ScanResult result;
  result.path = path;
  const auto t0 = Clock::now();
  try {
    DecodeOptions opts;
    opts.sample_rate = query_params_.sample_rate;
    opts.stream_index = options_.stream_index;
    opts.normalise = false;  // as for references: see indexer.cpp
    AudioDecoder decoder(path, opts);
    LandmarkMatcher matcher(query_params_, db_.index(), db_.timeline(), options_.match);
    std::unique_ptr<ContrastSpectrogram> contrast;
    std::unique_ptr<LogoMatcher> logo_matcher;
    if (!logos_.empty() && options_.landmarks && options_.logo_templates) {
      contrast = std::make_unique<ContrastSpectrogram>(
          db_.params(),
          [&logo_matcher](int, const float*, const float* c) { logo_matcher->push_step(c); });
      LogoMatchOptions candidates = options_.logo;
      candidates.min_score *= candidate_share();
      logo_matcher = std::make_unique<LogoMatcher>(logos_, contrast->num_bands(), candidates);
    }
    std::unique_ptr<LogoPeakMatcher> constellations;
    if (!logos_.empty() && options_.landmarks && options_.logo_constellations) {
      LogoPeakOptions candidates = options_.constellation;
      candidates.min_score *= candidate_share();
      constellations = std::make_unique<LogoPeakMatcher>(logos_, candidates);
    }
    std::unique_ptr<std::lock_guard<std::mutex>> embed_lock;
    std::unique_ptr<WindowEmbedder> windows;
    if (embedder_) {
      embed_lock = std::make_unique<std::lock_guard<std::mutex>>(embedder_mutex_);
      windows = std::make_unique<WindowEmbedder>(*embedder_, options_.embedding_hop_frames, 64);
    }
    std::unique_ptr<PeakVerifier> verifier;
    if (options_.landmarks && options_.peak_significance > 0)
      verifier = std::make_unique<PeakVerifier>(query_params_, db_.index());
    QueryConsumer consumer(db_.params().query_layers(), options_.landmarks ? &matcher : nullptr,
                           verifier.get(), contrast.get(), constellations.get(), windows.get());
    decoder.run(consumer);
    consumer.finish();
    auto tm = Clock::now();
    matcher.finish();
    if (logo_matcher) logo_matcher->finish();
    if (constellations) constellations->finish();
    double match_ms = ms_since(tm);
    result.duration_s = double(consumer.samples()) / query_params_.sample_rate;
    result.lookups = matcher.lookups();
    const auto& refs = db_.references();
    for (const LandmarkMatch& m : matcher.matches()) {
      const Reference& ref = refs.at(m.ref);
      const double threshold = min_score(ref.content_type, result.duration_s);
      PeakVerification peaks;
      if (m.score < threshold) {
        // Sound logos are short and have stages of their own; their chance alignments were not
        // measured against this test.
        if (!verifier || ref.content_type == ContentType::kTrademark ||
            m.score < threshold - options_.peak_rescue_margin)
          continue;
        peaks = verifier->verify(m, ref.frame_base, ref.frame_count);
        if (peaks.significance < options_.peak_significance ||
            peaks.reference_peaks < options_.peak_rescue_min_peaks)
          continue;
      }
      ScanMatch s;
      s.ref_id = ref.id;
      s.title = ref.title;
      s.content_type = ref.content_type;
      s.query_start = m.query_start;
      s.query_end = m.query_end;
      s.ref_start = m.ref_start;
      s.ref_end = m.ref_end;
      s.score = m.score;
      s.speed = m.speed;
      s.pitch_semitones = m.pitch_shift;
      s.landmarks = m.landmarks;
      s.anchors = m.anchors;
      s.frames = m.frames;
      s.background = m.background;
      s.pitch_factor = std::pow(2.0, m.pitch_shift / 12.0);
      s.reference_peaks = peaks.reference_peaks;
      s.peaks_matched = peaks.matched;
      s.peak_significance = peaks.significance;
      result.matches.push_back(s);
    }
    add_logo_matches(logo_matcher.get(), contrast.get(), constellations.get(), result.matches);
    bool music_found = false;
    for (const ScanMatch& m : result.matches)
      music_found |= m.content_type != ContentType::kTrademark;
    if (windows && db_.embeddings() &&
        (!music_found || options_.embedding_verify || consumer.streaming())) {
      auto te = Clock::now();
      const int coarse_hop = options_.embedding_coarse_hop_frames;
      bool refine = true;
      // A logo found by its template alone is checked on the fine hop.
      const bool check_logo = std::any_of(result.matches.begin(), result.matches.end(),
                                          [](const ScanMatch& m) { return template_only(m); });
      // Below a few seconds the fine pass has few windows more than the coarse one would.
      constexpr double kCoarseMinSeconds = 4.0;
      if (coarse_hop > options_.embedding_hop_frames && result.duration_s >= kCoarseMinSeconds &&
          !options_.embedding_verify && !check_logo && !consumer.streaming()) {
        WindowEmbedder coarse(*embedder_, coarse_hop, 64);
        consumer.embed_into(coarse);
        refine =
            best_embedding_decision(coarse.vectors(), coarse.windows(), coarse_hop * 0.01,
                                    coarse.window_seconds()) >=
            options_.embedding_refine_share * options_.embedding_threshold_for(result.duration_s);
      }
      if (refine) {
        const double lead_s = consumer.embed_now();
        add_embedding_matches(windows->vectors(), windows->windows(),
                              options_.embedding_hop_frames * 0.01, windows->window_seconds(),
                              lead_s, result.duration_s, music_found, result.matches);
      }
      match_ms += ms_since(te);
    }
    if (!clip_models_.empty()) {
      auto tm2 = Clock::now();
      bool found = false;
      for (const ScanMatch& m : result.matches) found |= m.content_type != ContentType::kTrademark;
      add_model_scores(path, result.duration_s, found, result.matches);
      match_ms += ms_since(tm2);
    }
    std::stable_sort(result.matches.begin(), result.matches.end(),
                     [](const ScanMatch& a, const ScanMatch& b) { return a.score > b.score; });
    if (int(result.matches.size()) > options_.max_matches)
      result.matches.resize(options_.max_matches);
    result.total_ms = ms_since(t0);
    result.decode_ms = std::max(0.0, result.total_ms - consumer.downstream_ms() - match_ms);
    result.ok = true;
  } catch (const std::exception& e) {
    result.ok = false;
    result.error = e.what();
    result.total_ms = ms_since(t0);
  }
  return result;
}

bool Scanner::template_only(const ScanMatch& m) {
  return m.stage == "template" && m.constellation_score <= 0 && m.landmarks == 0;
}

const Reference* Scanner::searchable_reference(uint32_t key) const {
  const long i = db_.reference_index(int64_t(key));
  if (i < 0) return nullptr;
  const Reference& ref = db_.references()[size_t(i)];
  return ref.content_type == ContentType::kTrademark ? nullptr : &ref;
}

double Scanner::best_embedding_decision(const std::vector<float>& vectors, size_t windows,
                                        double hop_s, double window_s) const {
  const ReferenceEmbeddings& store = *db_.embeddings();
  if (windows == 0 || store.vectors() == 0) return -1e300;
  EmbeddingMatcher matcher(store.index(), store, store.hop_s(), options_.embedding_match);
  double best = -1e300;
  for (const EmbeddingMatch& e : matcher.match(vectors.data(), windows, hop_s, window_s))
    if (searchable_reference(e.reference)) best = std::max(best, e.decision);
  return best;
}

void Scanner::add_embedding_matches(const std::vector<float>& vectors, size_t windows, double hop_s,
                                    double window_s, double lead_s, double duration_s,
                                    bool music_found, std::vector<ScanMatch>& matches) const {
  const ReferenceEmbeddings& store = *db_.embeddings();
  if (windows == 0 || store.vectors() == 0) return;
  EmbeddingMatcher matcher(store.index(), store, store.hop_s(), options_.embedding_match);
  const auto& refs = db_.references();
  // Search first: it also gives each query window's neighbours, which the verifications need.
  QueryNeighbours neighbours;
  const std::vector<EmbeddingMatch> found =
      matcher.match(vectors.data(), windows, hop_s, window_s, &neighbours);
  for (ScanMatch& m : matches) {
    if (m.content_type == ContentType::kTrademark && !template_only(m)) continue;
    auto ref = std::find_if(refs.begin(), refs.end(),
                            [&m](const Reference& r) { return r.id == m.ref_id; });
    if (ref == refs.end()) continue;
    const EmbeddingMatch e =
        matcher.score_at(vectors.data(), windows, hop_s, window_s, uint32_t(ref->key),
                         m.ref_start - (m.query_start + lead_s) * m.speed, m.speed, neighbours);
    m.embedding_margin = e.margin;
    m.embedding_windows = e.windows;
  }
  // A logo that only its template found, where the query looks less like it than like the
  // rest of the catalogue, was a chance correlation.
  matches.erase(std::remove_if(matches.begin(), matches.end(),
                               [this](const ScanMatch& m) {
                                 return template_only(m) && m.embedding_windows > 0 &&
                                        m.embedding_margin < options_.embedding_logo_veto;
                               }),
                matches.end());
  if (music_found) return;
  const double threshold = options_.embedding_threshold_for(duration_s);
  for (const EmbeddingMatch& e : found) {
    if (e.decision < threshold) continue;
    const Reference* found_ref = searchable_reference(e.reference);
    if (!found_ref) continue;
    const Reference& ref = *found_ref;
    ScanMatch s;
    s.ref_id = ref.id;
    s.title = ref.title;
    s.content_type = ref.content_type;
    // The span can reach into the padding, and the span about the segment's first reference
    // window a little before the reference's start.
    s.query_start = std::max(0.0, e.query_start - lead_s);
    s.query_end = std::min(e.query_end - lead_s, duration_s);
    s.ref_start = std::max(0.0, e.reference_time(s.query_start + lead_s));
    s.ref_end = s.ref_start + (s.query_end - s.query_start) * e.speed;
    s.speed = e.speed;
    // On the landmark scale: the threshold of the type and length is reached where the decision
    // value reaches its own threshold.
    s.score = min_score(ref.content_type, duration_s) * e.decision / threshold;
    s.stage = "embedding";
    s.embedding_margin = e.margin;
    s.embedding_windows = e.windows;
    s.embedding_decision = e.decision;
    s.embedding_runner_up = e.runner_up;
    matches.push_back(s);
  }
}

ScanMatch::ModelScore Scanner::model_score(ClipModel& model, const ModelVectors& vectors,
                                           const std::vector<float>& samples, const ScanMatch& m,
                                           uint32_t key) const {
  ScanMatch::ModelScore score;
  const nlohmann::json& spec = db_.model_specs().at(model.kind());
  const ClipWindows windows = model_windows_of(spec);
  const double window_s = windows.window_s, hop_s = windows.hop_s;
  const double rate = model.sample_rate();
  const size_t window = size_t(std::lround(window_s * rate));
  const double speed = m.speed > 0 ? m.speed : 1.0;
  // Query clips placed where the reference's windows fall under the alignment, inside the match
  // (a longer query may hold other music before and after it): each compared with the window it
  // lines up with. A query shorter than a window is one clip, as the model takes it.
  std::vector<std::pair<size_t, size_t>> clips;  // (query sample, reference window)
  size_t length = window;
  const double slack_s = window_s / 4;  // how far a clip may stick out of the match
  if (samples.size() <= window) {
    length = samples.size();
    const long w = vectors.window_near(key, m.ref_start - m.query_start * speed, hop_s / 2 + 1e-6);
    if (w >= 0 && length >= model.min_clip_samples()) clips.push_back({0, size_t(w)});
  } else {
    const long last = long(samples.size() - window);
    for (size_t w = 0; w < vectors.windows(key); ++w) {
      const double tq = m.query_start + (vectors.start(key, w) - m.ref_start) / speed;
      if (tq < m.query_start - slack_s || tq + window_s > m.query_end + slack_s) continue;
      const long at = std::lround(tq * rate);
      if (at < -long(window / 4) || at > last + long(window / 4)) continue;
      clips.push_back({size_t(std::clamp(at, 0L, last)), w});
    }
    if (clips.empty()) {
      // A match shorter than a window: the one window nearest its middle.
      const double mid = (m.query_start + m.query_end) / 2;
      const long at = std::clamp(std::lround((mid - window_s / 2) * rate), 0L, last);
      const double tr = m.ref_start + (double(at) / rate - m.query_start) * speed;
      const long w = vectors.window_near(key, tr, hop_s / 2 + 1e-6);
      if (w >= 0) clips.push_back({size_t(at), size_t(w)});
    }
  }
  if (clips.empty()) return score;
  const size_t dim = size_t(model.dim());
  std::vector<float> batch, out(clips.size() * dim);
  for (size_t first = 0; first < clips.size(); first += 8) {
    const size_t n = std::min<size_t>(8, clips.size() - first);
    batch.clear();
    for (size_t i = first; i < first + n; ++i)
      batch.insert(batch.end(), samples.begin() + long(clips[i].first),
                   samples.begin() + long(clips[i].first + length));
    model.embed(batch.data(), n, length, out.data() + first * dim);
  }
  // The background: each clip's most similar window of another reference. Its own reference can
  // fill at most windows(key) places of the list, so one that long reaches another's (capped: a
  // clip whose list holds none has no background and no margin).
  const int k = int(std::min<size_t>({vectors.vectors(), vectors.windows(key) + 1, 256}));
  const auto neighbours = vectors.search(out.data(), clips.size(), k);
  double similarity = 0, margin = 0;
  for (size_t i = 0; i < clips.size(); ++i) {
    const float* ref = vectors.vector(key, clips[i].second);
    double dot = 0;
    for (size_t d = 0; d < dim; ++d) dot += double(out[i * dim + d]) * ref[d];
    similarity += dot;
    for (int j = 0; j < k; ++j) {
      const auto& nb = neighbours[i * size_t(k) + size_t(j)];
      if (nb.reference_key != 0 && nb.reference_key != key) {
        margin += dot - nb.similarity;
        ++score.margin_windows;
        break;
      }
    }
  }
  score.windows = int(clips.size());
  score.similarity = similarity / double(clips.size());
  if (score.margin_windows > 0) score.margin = margin / score.margin_windows;
  return score;
}

void Scanner::add_model_scores(const std::string& path, double duration_s, bool music_found,
                               std::vector<ScanMatch>& matches) const {
  if (path == "-") {
    spdlog::warn(
        "the published models need the query as a file (it is decoded again at each "
        "model's rate); standard input is scanned without them");
    return;
  }
  const bool search = !music_found && options_.model_search;
  if (matches.empty() && !search) return;
  std::lock_guard<std::mutex> lock(clip_mutex_);
  std::map<std::string, std::vector<float>> audio;  // the query at each model's rate
  for (const auto& [kind, model] : clip_models_) {
    DecodeOptions opts;
    opts.sample_rate = model->sample_rate();
    opts.stream_index = options_.stream_index;
    opts.normalise = false;  // the originals do no level normalisation
    audio[kind] = decode_to_vector(path, opts);
  }
  auto key_of = [&](const std::string& id) -> uint32_t {
    for (const Reference& r : db_.references())
      if (r.id == id) return uint32_t(r.key);
    return 0;
  };
  auto score_all = [&](ScanMatch& m) {
    const uint32_t key = key_of(m.ref_id);
    double sum = 0;
    m.models_scored = 0;
    for (const auto& [kind, model] : clip_models_) {
      const ModelVectors* vectors = db_.model_vectors(kind);
      if (!vectors || key == 0) continue;
      const ScanMatch::ModelScore score = model_score(*model, *vectors, audio.at(kind), m, key);
      m.model_scores[kind] = score;
      if (score.margin_windows > 0) sum += score.margin, ++m.models_scored;
    }
    m.fused_margin = m.models_scored > 0 ? sum / m.models_scored : 0;
  };
  for (ScanMatch& m : matches) score_all(m);
  if (!search) return;

  // The models' own search: each query window's nearest reference windows vote for a reference
  // and an offset; the best of each model is scored by all of them, and the best fused one kept
  // when its margin is high enough.
  std::vector<ScanMatch> candidates;
  for (const auto& [kind, model] : clip_models_) {
    const ModelVectors* vectors = db_.model_vectors(kind);
    if (!vectors || vectors->vectors() == 0) continue;
    const ClipWindows windows = model_windows_of(db_.model_specs().at(kind));
    const ClipEmbedding q = embed_recording(*model, audio.at(kind), windows);
    const std::vector<float> starts = q.starts_s();
    const int k = 10;
    const auto neighbours = vectors->search(q.vectors.data(), starts.size(), k);
    std::map<std::pair<uint32_t, long>, double> votes;  // (reference, offset in hops) -> weight
    for (size_t i = 0; i < starts.size(); ++i)
      for (int j = 0; j < k; ++j) {
        const auto& nb = neighbours[i * size_t(k) + size_t(j)];
        if (nb.reference_key == 0) continue;
        const double offset = vectors->start(nb.reference_key, nb.window) - starts[i];
        votes[{nb.reference_key, std::lround(offset / windows.hop_s)}] += nb.similarity;
      }
    // The best vote for music or other content: logos have their own stages.
    const Reference* found = nullptr;
    long offset_hops = 0;
    double weight = 0;
    for (const auto& [vote, w] : votes) {
      if (w <= weight) continue;
      if (const Reference* r = searchable_reference(vote.first))
        found = r, offset_hops = vote.second, weight = w;
    }
    if (!found) continue;
    const Reference& ref = *found;
    ScanMatch c;
    c.ref_id = ref.id;
    c.title = ref.title;
    c.content_type = ref.content_type;
    c.stage = "model";
    const double offset = double(offset_hops) * windows.hop_s;
    c.query_start = std::max(0.0, -offset);
    c.query_end = std::min(duration_s, ref.duration_s - offset);
    c.ref_start = c.query_start + offset;
    c.ref_end = c.query_end + offset;
    candidates.push_back(c);
  }
  ScanMatch* best = nullptr;
  for (ScanMatch& c : candidates) {
    score_all(c);
    if (!best || c.fused_margin > best->fused_margin) best = &c;
  }
  if (!best || best->models_scored == 0 || best->fused_margin < options_.model_min_margin) return;
  // On the landmark scale, as the other stages' scores: the threshold times the margin's ratio
  // to its own threshold.
  best->score =
      min_score(best->content_type, duration_s) * best->fused_margin / options_.model_min_margin;
  matches.push_back(*best);
}

nlohmann::json to_json(const ScanMatch& m) {
  auto r3 = [](double v) { return std::round(v * 1000.0) / 1000.0; };
  nlohmann::json evidence = nlohmann::json::object();
  if (m.stage == "landmark") {
    evidence = {{"landmarks", m.landmarks},
                {"anchors", m.anchors},
                {"frames", m.frames},
                {"background", m.background}};
  }
  if (m.stage == "template" || m.template_score > 0) {
    evidence["correlation"] = r3(m.correlation);
    evidence["template_score"] = r3(m.template_score);
  }
  if (m.reference_peaks > 0) {
    evidence["reference_peaks"] = m.reference_peaks;
    evidence["peaks_matched"] = m.peaks_matched;
    evidence["peak_significance"] = r3(m.peak_significance);
  }
  if (m.embedding_windows > 0) {
    evidence["embedding_margin"] = r3(m.embedding_margin);
    evidence["embedding_windows"] = m.embedding_windows;
  }
  if (m.stage == "embedding") {
    evidence["embedding_decision"] = r3(m.embedding_decision);
    evidence["embedding_runner_up"] = r3(m.embedding_runner_up);
  }
  if (!m.model_scores.empty()) {
    nlohmann::json models = nlohmann::json::object();
    for (const auto& [kind, score] : m.model_scores) {
      models[kind] = {{"similarity", r3(score.similarity)}, {"windows", score.windows}};
      if (score.margin_windows > 0) models[kind]["margin"] = r3(score.margin);
    }
    evidence["models"] = models;
    if (m.models_scored > 0) evidence["fused_margin"] = r3(m.fused_margin);
  }
  if (m.stage == "constellation" || m.constellation_score > 0) {
    evidence["votes"] = m.votes;
    evidence["constellation_score"] = r3(m.constellation_score);
  }
  return {{"ref", m.ref_id},
          {"title", m.title},
          {"content_type", to_string(m.content_type)},
          {"query_start", r3(m.query_start)},
          {"query_end", r3(m.query_end)},
          {"ref_start", r3(m.ref_start)},
          {"ref_end", r3(m.ref_end)},
          {"score", r3(m.score)},
          {"speed", std::round(m.speed * 10000.0) / 10000.0},
          {"pitch", std::round(m.pitch_factor * 10000.0) / 10000.0},
          {"pitch_semitones", std::round(m.pitch_semitones * 100.0) / 100.0},
          {"stage", m.stage},
          {"evidence", evidence}};
}

nlohmann::json to_json(const ScanResult& r) {
  nlohmann::json j = {{"query", r.path}};
  if (!r.ok) {
    j["error"] = r.error;
    j["matches"] = nlohmann::json::array();
    return j;
  }
  j["duration_s"] = std::round(r.duration_s * 1000.0) / 1000.0;
  nlohmann::json ms = nlohmann::json::array();
  for (const ScanMatch& m : r.matches) ms.push_back(to_json(m));
  j["matches"] = ms;
  return j;
}

}  // namespace earmark
