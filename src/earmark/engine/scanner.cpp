#include "earmark/engine/scanner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "earmark/common/error.h"
#include "earmark/decode/audio_decoder.h"
#include "earmark/landmarks/landmark_extractor.h"

namespace earmark {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Feeds the extractor and keeps the time spent downstream of the decoder, so decoding time can
// be told apart from fingerprinting time in a streaming pipeline.
class QueryConsumer : public AudioConsumer {
 public:
  QueryConsumer(const std::vector<LandmarkParams>& layers, LandmarkMatcher& matcher,
                ContrastSpectrogram* contrast)
      : extractor_(
            layers, [&matcher](const TripletDescriptor& d) { matcher.add(d); },
            [contrast](int, const float* log_power) {
              if (contrast) contrast->push_frame(log_power);
            }),
        contrast_(contrast) {}
  void consume(const float* x, size_t n) override {
    auto t0 = Clock::now();
    extractor_.consume(x, n);
    samples_ += n;
    downstream_ms_ += ms_since(t0);
  }
  void finish() {
    auto t0 = Clock::now();
    extractor_.finish();
    if (contrast_) contrast_->finish();
    downstream_ms_ += ms_since(t0);
  }
  size_t samples() const { return samples_; }
  double downstream_ms() const { return downstream_ms_; }

 private:
  LayeredExtractor extractor_;
  ContrastSpectrogram* contrast_;
  size_t samples_ = 0;
  double downstream_ms_ = 0;
};

}  // namespace

Scanner::Scanner(const Database& db, const ScanOptions& options)
    : db_(db), options_(options), query_params_(db.params().for_query()) {
  if (options_.max_matches < 1) throw Error("max_matches must be at least 1");
  for (double t : {options_.min_score_music, options_.min_score_trademark, options_.min_score_other,
                   options_.logo.min_score})
    if (!(t >= 0 && t <= 1e6)) throw Error("thresholds must be in [0, 1e6]");
  if (!(options_.threshold_growth >= 0 && options_.threshold_growth <= 10))
    throw Error("threshold growth must be in [0, 10]");
  if (options_.logo_templates)
    for (const LogoTemplate& t : db_.logo_templates()) logos_.push_back(&t);
}

double Scanner::min_score(ContentType type, double query_seconds) const {
  if (type == ContentType::kTrademark) return options_.min_score_trademark;
  const double window_s = options_.match.window_frames * query_params_.frame_seconds();
  const double length = std::clamp(query_seconds, 1.0, std::max(1.0, window_s));
  return threshold_for(type) + options_.threshold_growth * std::log(length / 3.0);
}

double Scanner::threshold_for(ContentType type) const {
  return type == ContentType::kMusic       ? options_.min_score_music
         : type == ContentType::kTrademark ? options_.min_score_trademark
                                           : options_.min_score_other;
}

void Scanner::add_logo_matches(const LogoMatcher& logo_matcher, const ContrastSpectrogram& contrast,
                               std::vector<ScanMatch>& matches) const {
  const size_t found_by_landmarks = matches.size();
  for (const LogoDetection& d : logo_matcher.detections()) {
    const Reference& ref = db_.references().at(db_.logo_references().at(d.logo));
    ScanMatch s;
    s.stage = "template";
    s.ref_id = ref.id;
    s.title = ref.title;
    s.content_type = ref.content_type;
    const double length = d.steps * contrast.step_seconds();
    s.query_start = contrast.step_time(d.step);
    s.query_end = s.query_start + length;
    s.ref_start = contrast.step_time(0);
    s.ref_end = std::min(ref.duration_s, s.ref_start + length);
    s.template_score = d.score;
    s.correlation = d.correlation;
    // Onto the landmark scale of its content type, where both stages' thresholds meet
    // (thresholds below 1 are for inspecting weak candidates only; they must not blow the ratio
    // up).
    s.score = d.score * std::max(threshold_for(ref.content_type), 1.0) /
              std::max(options_.logo.min_score, 1.0);
    // The landmark stage's view of the same occurrence carries speed and pitch: keep it, with
    // the template's evidence and the stronger of the two scores. Otherwise a family of similar
    // logos (one jingle in several variants) lets a sibling's template outscore the right
    // logo's landmarks.
    bool seen = false;
    for (size_t i = 0; i < found_by_landmarks; ++i) {
      ScanMatch& m = matches[i];
      if (m.ref_id == s.ref_id &&
          std::min(m.query_end, s.query_end) > std::max(m.query_start, s.query_start)) {
        seen = true;
        if (s.template_score > m.template_score) {  // the evidence of the best detection
          m.template_score = s.template_score;
          m.correlation = s.correlation;
        }
        m.score = std::max(m.score, s.score);
      }
    }
    if (!seen) matches.push_back(s);
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
    if (!logos_.empty()) {
      contrast = std::make_unique<ContrastSpectrogram>(
          db_.params(),
          [&logo_matcher](int, const float*, const float* c) { logo_matcher->push_step(c); });
      logo_matcher = std::make_unique<LogoMatcher>(logos_, contrast->num_bands(), options_.logo);
    }
    QueryConsumer consumer(db_.params().query_layers(), matcher, contrast.get());
    decoder.run(consumer);
    consumer.finish();
    auto tm = Clock::now();
    matcher.finish();
    if (logo_matcher) logo_matcher->finish();
    double match_ms = ms_since(tm);
    result.duration_s = double(consumer.samples()) / query_params_.sample_rate;
    result.lookups = matcher.lookups();
    const auto& refs = db_.references();
    for (const LandmarkMatch& m : matcher.matches()) {
      const Reference& ref = refs.at(m.ref);
      if (m.score < min_score(ref.content_type, result.duration_s)) continue;
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
      result.matches.push_back(s);
    }
    if (logo_matcher) add_logo_matches(*logo_matcher, *contrast, result.matches);
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

nlohmann::json to_json(const ScanMatch& m) {
  auto r3 = [](double v) { return std::round(v * 1000.0) / 1000.0; };
  nlohmann::json evidence = nlohmann::json::object();
  if (m.stage != "template") {
    evidence = {{"landmarks", m.landmarks},
                {"anchors", m.anchors},
                {"frames", m.frames},
                {"background", m.background}};
  }
  if (m.stage == "template" || m.template_score > 0) {
    evidence["correlation"] = r3(m.correlation);
    evidence["template_score"] = r3(m.template_score);
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
