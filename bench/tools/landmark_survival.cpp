// landmark_survival: how many of a reference's landmarks a distorted query reproduces.
//
//   landmark_survival CATALOGUE_TSV QUERY_DIR
//
// EARMARK_LANDMARK_PARAMS='{"query_fanout": 6}' tries other settings (any LandmarkParams field);
// EARMARK_SURVIVAL_VERBOSE=1 prints a line per query.
//
// For every positive query of QUERY_DIR/truth.jsonl (the identification benchmark's ground
// truth), extracts the reference and the query as the index and the scanner would, and counts a
// reference landmark of the matched span as reproduced when the query probes its key at the
// expected anchor frame (within 3 frames), and a reference peak as kept when the query has a
// peak within 1.5 frames and 0.5 semitone of where it should be. Prints the mean shares and the
// mean count of reproduced landmarks per distortion and per query length. Top-1 rates saturate and
// move in steps of whole queries; this share moves with every change to peak picking or hashing,
// which makes it the figure to tune those on.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "earmark/decode/audio_decoder.h"
#include "earmark/landmarks/landmark_extractor.h"

using namespace earmark;

namespace {

std::string folder_of(const std::string& path) {
  size_t s = path.rfind('/');
  return s == std::string::npos ? std::string(".") : path.substr(0, s);
}

std::string resolve(const std::string& base, const std::string& p) {
  return !p.empty() && p[0] == '/' ? p : base + "/" + p;
}

struct Stat {
  double share = 0, peak_share = 0, found = 0;
  int n = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: landmark_survival CATALOGUE_TSV QUERY_DIR\n");
    return 2;
  }
  const std::string tsv = argv[1], qdir = argv[2];
  std::map<std::string, std::pair<std::string, bool>> refs;  // id -> (path, trademark)
  {
    std::ifstream in(tsv);
    std::string line;
    while (std::getline(in, line)) {
      size_t a = line.find('\t');
      if (a == std::string::npos) continue;
      size_t b = line.find('\t', a + 1);
      std::string id = line.substr(0, a);
      std::string path = line.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
      bool trademark = b != std::string::npos && line.substr(b + 1) == "trademark";
      refs[id] = {resolve(folder_of(tsv), path), trademark};
    }
  }
  LandmarkParams params;
  // Settings to try, as a JSON object of LandmarkParams fields, e.g. '{"query_fanout": 6}'.
  if (const char* j = std::getenv("EARMARK_LANDMARK_PARAMS")) {
    nlohmann::json base = params.to_json();
    base.merge_patch(nlohmann::json::parse(j));
    params = LandmarkParams::from_json(base);
  }
  DecodeOptions dopts;
  dopts.normalise = false;
  std::map<std::string, std::vector<Landmark>> ref_cache;
  std::map<std::string, std::vector<SpectralPeak>> ref_peaks;
  std::map<std::string, Stat> by_distortion, by_length;
  Stat all;

  std::ifstream truth(qdir + "/truth.jsonl");
  std::string line;
  int done = 0;
  while (std::getline(truth, line)) {
    auto t = nlohmann::json::parse(line);
    if (t["ref"].is_null()) continue;
    const std::string id = t["ref"];
    auto r = refs.find(id);
    if (r == refs.end()) continue;
    auto& ref_lm = ref_cache[id];
    if (ref_lm.empty()) {
      auto x = decode_to_vector(r->second.first, dopts);
      auto rp = params.for_reference(double(x.size()) / params.sample_rate, r->second.second);
      for (const LandmarkParams& layer :
           params.reference_layers(double(x.size()) / params.sample_rate, r->second.second)) {
        auto more = extract_landmarks(layer, x.data(), x.size());
        ref_lm.insert(ref_lm.end(), more.begin(), more.end());
      }
      ref_peaks[id] = extract_peaks(rp, x.data(), x.size());
    }
    auto q = decode_to_vector(resolve(qdir, t["query"]), dopts);
    // Query probe keys -> anchor frames.
    TripletQuantizer quantizer(params);
    std::unordered_multimap<uint32_t, int32_t> probes;
    std::vector<uint32_t> keys;
    LayeredExtractor ex(params.query_layers(), [&](const TripletDescriptor& d) {
      keys.clear();
      quantizer.probe_keys(d, keys);
      for (uint32_t k : keys) probes.emplace(k, d.frame);
    });
    ex.consume(q.data(), q.size());
    ex.finish();

    const double fs = params.frame_seconds();
    const double ref_start = t["ref_start"], q_start = t["query_start"];
    const double len = t["match_len_s"], speed = t.value("speed", 1.0);
    int total = 0, found = 0;
    for (const Landmark& l : ref_lm) {
      double rt = l.frame * fs;
      if (rt < ref_start || rt > ref_start + len * speed) continue;
      double qf = (q_start + (rt - ref_start) / speed) / fs;
      ++total;
      auto range = probes.equal_range(l.key);
      for (auto it = range.first; it != range.second; ++it)
        if (std::fabs(it->second - qf) <= 3.0) {
          ++found;
          break;
        }
    }
    if (total == 0) continue;
    double share = double(found) / total;
    // Peaks: a reference peak survives when the query has one within 1 frame and 0.5 semitone
    // (after undoing the known tempo and pitch change).
    const double shift = t["params"].value("semitones", 0.0);
    auto qpeaks = extract_peaks(params.for_query(), q.data(), q.size());
    int ptotal = 0, pfound = 0;
    for (const SpectralPeak& rp : ref_peaks[id]) {
      double rt = rp.frame * fs;
      if (rt < ref_start + 0.1 || rt > ref_start + len * speed - 0.1) continue;
      double qf = (q_start + (rt - ref_start) / speed) / fs;
      ++ptotal;
      for (const SpectralPeak& qp : qpeaks)
        if (std::fabs(qp.time - qf) <= 1.5 && std::fabs(qp.pitch - shift - rp.pitch) <= 0.5) {
          ++pfound;
          break;
        }
    }
    double peak_share = ptotal ? double(pfound) / ptotal : 0;
    if (std::getenv("EARMARK_SURVIVAL_VERBOSE"))
      std::printf("%s %s %s found %d of %d, peaks %d of %d\n", std::string(t["query"]).c_str(),
                  id.c_str(), std::string(t.value("distortion", "")).c_str(), found, total, pfound,
                  ptotal);
    std::string dist = t.value("distortion", std::string("?"));
    if (t["kind"] != "pos") dist = "jingle_" + dist;
    for (Stat* s :
         {&by_distortion[dist],
          &by_length[t["kind"] == "pos" ? std::to_string(int(t["length_s"])) + "s" : "jingle"],
          &all}) {
      s->share += share;
      s->peak_share += peak_share;
      s->found += found;
      s->n += 1;
    }
    if (++done % 100 == 0) std::fprintf(stderr, "%d queries\n", done);
  }
  std::printf("%-16s %6s %6s %7s %5s\n", "distortion", "share%", "peaks%", "found", "n");
  for (auto& [k, s] : by_distortion)
    std::printf("%-16s %6.1f %6.1f %7.1f %5d\n", k.c_str(), 100 * s.share / s.n,
                100 * s.peak_share / s.n, s.found / s.n, s.n);
  for (auto& [k, s] : by_length)
    std::printf("%-16s %6.1f %6.1f %7.1f %5d\n", k.c_str(), 100 * s.share / s.n,
                100 * s.peak_share / s.n, s.found / s.n, s.n);
  std::printf("%-16s %6.1f %6.1f %7.1f %5d\n", "ALL", 100 * all.share / all.n,
              100 * all.peak_share / all.n, all.found / all.n, all.n);
  return 0;
}
