#pragma once
// Finds catalogued references inside a query recording: streams it through the decoder, the
// landmark extractor (query density) and the matcher, and, when the catalogue holds sound logos,
// through their dense template and constellation matchers too; reports every segment that
// matches, best first.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "earmark/embeddings/clip_model.h"
#include "earmark/embeddings/embedder.h"
#include "earmark/engine/database.h"
#include "earmark/matching/embedding_matcher.h"
#include "earmark/matching/landmark_matcher.h"
#include "earmark/matching/logo_matcher.h"
#include "earmark/matching/logo_peak_matcher.h"

namespace earmark {

struct ScanOptions {
  int stream_index = -1;
  // Decision thresholds on LandmarkMatch::score per content type of the matched reference, set on
  // both query sets of the benchmark's development split for a false-positive rate under 1 % on
  // music that is not in the catalogue (and none on backgrounds without a logo, for
  // trademarks). A template match is decided by logo.min_score; these only rescale its score.
  double min_score_music = 7.0;
  double min_score_trademark = 5.0;
  double min_score_other = 7.0;
  // Chance alignments score higher the more query time a window holds (more probes, more hits):
  // the music and other thresholds above are for 3 s and grow by this much per e-fold of the
  // query's length, which counts up to one analysis window (20 s) and down to 1 s. On the
  // development negatives the highest chance score was 4.8 at 1 s and 7.8 at 10 s. Trademark
  // thresholds stay fixed: a short query matched by chance against a logo is no rarer for being
  // short, and lowering them let music negatives in.
  double threshold_growth = 1.3;
  // A larger catalogue offers chance alignments more postings to land on: the music and other
  // thresholds also grow by this much per e-fold of the catalogue's hours of audio beyond
  // threshold_catalogue_hours (the development catalogue they were set on). Against 13.4 h, the
  // development queries had five wrong references and a negative over the 3.55 h thresholds and
  // one wrong reference (in a 1 s query) over these, with the same top-1.
  double threshold_catalogue_growth = 0.5;
  double threshold_catalogue_hours = 3.5;
  // A landmark match of music or other content that misses its threshold by at most
  // peak_rescue_margin is checked against all of its reference's stored peaks (PeakVerifier) and
  // kept when its significance over wrong alignments reaches peak_significance. On the
  // development split no chance alignment within that margin reached 5.3 (none of 5 s or more
  // reached 4.9, at any score); the true ones there reached 7.5 to 9.1. 0 turns the rescue off.
  double peak_significance = 7.0;
  double peak_rescue_margin = 4.0;
  // And only with this many reference peaks under the aligned query (about 4 s of reference):
  // the peaks of the landmarks that proposed the alignment match by construction, which over a
  // short stretch is most of what matches (a chance 1 s alignment reached 6.9).
  int peak_rescue_min_peaks = 100;
  int max_matches = 50;
  MatchOptions match;
  // Dense template matching of the catalogue's sound logos (references with a template); its
  // min_score is the trademark threshold of that stage.
  bool logo_templates = true;
  LogoMatchOptions logo;
  // Constellation matching of the same logos (their peaks, stored with the template); its
  // min_score is that stage's threshold, and its scores are rescaled like the template's.
  bool logo_constellations = true;
  LogoPeakOptions constellation;
  // Where both find the same occurrence of a logo, their evidence adds up: it is reported when
  // template_score / logo.min_score + constellation_score / constellation.min_score reaches this.
  // Set on the development split (2,520 queries), where no negative's pair reached 1.27.
  double logo_agreement = 1.4;
  // The embedding stage, where the index has one: a query in which landmarks find no music or
  // other reference is searched by embedding alone, and decided by embedding_threshold.
  bool embedding = true;
  // The landmark stage, and with it the sound-logo stages (they share its spectrogram and peaks).
  // Off: the embedding stage alone searches every query (for its own figures).
  bool landmarks = true;
  std::string embedding_weights;  // empty: default_fingerprint_weights()
  int embedding_hop_frames = 10;  // query windows every 0.1 s
  // Coarse first: a query of 4 s or more is first embedded every embedding_coarse_hop_frames
  // and searched; only when that search finds a candidate whose decision value reaches
  // embedding_refine_share of the threshold is it embedded on the fine hop and decided there.
  // Most queries that reach this stage hold nothing catalogued (the landmarks found no music
  // because there is none). A 0.5 s hop was cheaper still but misjudged 2-3 s excerpts inside
  // longer recordings (too few windows on them). At 0.25 s a coarse window is up to 0.125 s
  // from the reference window it is compared with, so coarse decisions run low: a share of 0.6
  // lost no query on the development split (with the network before the shipped one, 0.7 lost
  // one). 0 turns the pass off.
  int embedding_coarse_hop_frames = 25;
  double embedding_refine_share = 0.6;
  int embedding_threads = 0;  // intra-op threads of the network; 0: one per core
  // Also score the landmark stage's matches by embedding (evidence only). Off by default: a
  // query whose music the landmarks found is then not embedded at all, which saves most of its
  // time.
  bool embedding_verify = false;
  // The decision value (EmbeddingMatch::decision) a match found by embedding alone needs: this at
  // 1 s, growing by embedding_threshold_growth per e-fold of query length. A longer query offers
  // more places for a chance run of similar windows, and its best one earns the length bonus.
  // With the growth about equal to the length bonus, a match pays for the part of the query it
  // does not cover. Calibrated on the development split, on the strongest negative of each length
  // (jingle negatives and wrong references included): see README.
  double embedding_threshold = 0.12;
  double embedding_threshold_growth = 0.04;
  // A sound logo that only its template found (no constellation, no landmarks) is dropped when
  // the embedding stage finds the query at that place less like the logo than like its
  // background (margin below this). On the development split the one music negative a template
  // matched had -0.19; the true logos found by their template alone had -0.11 and more. The gap
  // is narrow: the network trained for a 0.5 s reference hop tells a logo from its surroundings
  // less sharply than the one before it (-0.34 against 0.02).
  double embedding_logo_veto = -0.15;
  EmbeddingMatchOptions embedding_match;
  // The published models (embeddings/clip_model.h) the index holds vectors of, with their
  // weights: each scores every match at its aligned offset (ScanMatch::model_scores), and, with
  // model_search, when no music or other reference was found, they search together. Models the
  // index has and this list lacks are skipped. The query is decoded again at each model's rate.
  // The search is off unless asked for (it always is when the models scan alone): its threshold
  // could not be calibrated without the published checkpoints.
  std::vector<ModelChoice> models;
  bool model_search = false;
  // The fused margin (mean over the models of aligned similarity minus the best other
  // reference's) a match found by the models' own search needs. Not calibrated: no published
  // checkpoint could be had here (see README).
  double model_min_margin = 0.1;
  int model_threads = 0;  // intra-op threads per model; 0: one per core

  double embedding_threshold_for(double duration_s) const {
    return embedding_threshold + embedding_threshold_growth * std::log(std::max(1.0, duration_s));
  }
};

struct ScanMatch {
  std::string ref_id;
  std::string title;
  ContentType content_type = ContentType::kMusic;
  double query_start = 0, query_end = 0;
  double ref_start = 0, ref_end = 0;
  double score = 0;
  double speed = 1.0;         // reference seconds per query second
  double pitch_factor = 1.0;  // query frequency / reference frequency
  double pitch_semitones = 0.0;
  // Which stage found it: "landmark" (hash votes; the fields below are its evidence),
  // "template" (a sound logo's dense template; `correlation` is its evidence) or "constellation"
  // (a sound logo's peaks; `votes` is its evidence). Speed and pitch are 1 for the last two, as
  // they match the logo as recorded.
  std::string stage = "landmark";
  int landmarks = 0, anchors = 0, frames = 0, background = 0;  // see LandmarkMatch
  // The template's evidence (LogoDetection): its correlation and its score on its own scale. Also
  // set on a landmark match of a logo that its template found too. `score` is on the landmark
  // scale whichever stage found the match: a template score is mapped onto it by the ratio of
  // the two stages' thresholds (the landmark one of the reference's content type), and a logo found
  // by both takes the larger of its two scores.
  double correlation = 0;
  double template_score = 0;
  // The constellation's evidence (LogoPeakDetection), likewise: logo peaks found in place, and
  // the score on its own scale.
  int votes = 0;
  double constellation_score = 0;
  // The embedding stage's view ("embedding" stage, or verification of another stage's match):
  // mean margin of the aligned segment over each window's background, and its window count
  // (0: not scored).
  double embedding_margin = 0;
  int embedding_windows = 0;
  // A match found by embedding alone: its decision value and the strongest other reference's
  // strength (EmbeddingMatch).
  double embedding_decision = 0, embedding_runner_up = 0;
  // Each published model's view of the match at its aligned offset: mean similarity of the
  // query's windows to the reference windows they align with, the margin of that over each
  // window's most similar other reference, and the windows compared (a window whose nearest
  // neighbours are all of this reference has no margin). `fused_margin`: the mean margin over the
  // models that have one (models_scored of them).
  struct ModelScore {
    double similarity = 0, margin = 0;
    int windows = 0;
    int margin_windows = 0;  // windows with another reference's to compare (0: no margin)
  };
  std::map<std::string, ModelScore> model_scores;
  double fused_margin = 0;
  int models_scored = 0;
  // Peak verification of a landmark match (PeakVerification; reference_peaks 0: not verified).
  int reference_peaks = 0, peaks_matched = 0;
  double peak_significance = 0;
};

struct ScanResult {
  std::string path;
  bool ok = false;
  std::string error;
  double duration_s = 0;
  double decode_ms = 0;  // time spent decoding and resampling
  double total_ms = 0;   // decode + fingerprint + match
  size_t lookups = 0;
  std::vector<ScanMatch> matches;
};

class Scanner {
 public:
  explicit Scanner(const Database& db, const ScanOptions& options = {});
  // Never throws for a bad query file: the error is in the result.
  ScanResult scan(const std::string& path) const;

  // Landmark score a match of a reference of this type needs in a query of this length.
  double min_score(ContentType type, double query_seconds) const;

 private:
  // The threshold of this type at the 3 s reference length.
  double threshold_for(ContentType type) const;
  double candidate_share() const;
  // The sound logos the template and constellation stages found (either may be absent).
  void add_logo_matches(const LogoMatcher* templates, const ContrastSpectrogram* contrast,
                        const LogoPeakMatcher* constellations,
                        std::vector<ScanMatch>& matches) const;
  // A logo's occurrence as the template or constellation stage sees it, not yet scored.
  ScanMatch logo_match(size_t logo, double query_start, double length) const;
  // Adds a logo match, or merges it into a match of the same logo and occurrence found before.
  static void merge_logo_match(const ScanMatch& s, std::vector<ScanMatch>& matches);
  // The embedding stage's part of a scan: verification of the matches found, and a search when
  // no music or other reference was found.
  // `music_found`: the earlier stages found music or another non-logo reference, so the search
  // only verifies. `lead_s`: padding embedded before the query's first sample (window times are
  // that much ahead of query times).
  void add_embedding_matches(const std::vector<float>& vectors, size_t windows, double hop_s,
                             double window_s, double lead_s, double duration_s, bool music_found,
                             std::vector<ScanMatch>& matches) const;
  // The reference with this catalogue key, when the embedding search may report it (null for an
  // unknown one or a sound logo: logos have their own stages).
  const Reference* searchable_reference(uint32_t key) const;
  // A logo match that only the template stage supports.
  static bool template_only(const ScanMatch& m);
  // The highest decision value of the non-logo candidates an embedding search of these windows
  // finds (the coarse pass).
  double best_embedding_decision(const std::vector<float>& vectors, size_t windows, double hop_s,
                                 double window_s) const;
  // The published models' part: scores every match, and searches when nothing else was found.
  void add_model_scores(const std::string& path, double duration_s, bool music_found,
                        std::vector<ScanMatch>& matches) const;
  // One model's view of a match from the query's samples at the model's rate.
  ScanMatch::ModelScore model_score(ClipModel& model, const ModelVectors& vectors,
                                    const std::vector<float>& samples, const ScanMatch& m,
                                    uint32_t key) const;
  const Database& db_;
  ScanOptions options_;
  std::map<std::string, std::unique_ptr<ClipModel>> clip_models_;  // by kind
  mutable std::mutex clip_mutex_;                                  // a ClipModel is not thread-safe
  std::unique_ptr<Embedder> embedder_;  // null without the embedding stage
  mutable std::mutex embedder_mutex_;   // an Embedder is not thread-safe
  LandmarkParams query_params_;
  std::vector<const LogoTemplate*> logos_;
  double catalogue_hours_ = 0;
};

nlohmann::json to_json(const ScanMatch& m);
nlohmann::json to_json(const ScanResult& r);

}  // namespace earmark
