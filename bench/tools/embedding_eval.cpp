// The embedding stage on its own, over a benchmark query set: embeds a catalogue TSV's references
// on the reference hop into a vector index, then matches every query of QUERY_DIR/queries.txt and
// writes OUT_DIR/results.jsonl in the format ../shared/bench/score.py reads, with
// OUT_DIR/timing.json. A tuning and measuring tool until the stage is part of `earmark scan`.
//   embedding_eval CATALOGUE_TSV QUERY_DIR OUT_DIR [--weights FILE] [--ref-hop FRAMES]
//                  [--query-hop FRAMES] [--index flat|hnsw|ivf-flat|ivf-pq] [--min-score S]
//                  [--threads N]
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "earmark/common/cpu_setup.h"
#include "earmark/common/error.h"
#include "earmark/decode/audio_decoder.h"
#include "earmark/embeddings/fingerprint_net.h"
#include "earmark/embeddings/window_embedder.h"
#include "earmark/index/vector_index.h"
#include "earmark/matching/embedding_matcher.h"

using namespace earmark;
namespace fs = std::filesystem;

namespace {

class MemoryVectors : public ReferenceVectors {
 public:
  explicit MemoryVectors(int dim) : dim_(dim) {}
  void add(std::vector<float> v) { refs_.push_back(std::move(v)); }
  size_t windows(uint32_t r) const override {
    return r < refs_.size() ? refs_[r].size() / size_t(dim_) : 0;
  }
  const float* vector(uint32_t r, size_t w) const override {
    return refs_[r].data() + w * size_t(dim_);
  }
  size_t count() const { return refs_.size(); }

 private:
  int dim_;
  std::vector<std::vector<float>> refs_;
};

std::string resolve(const fs::path& base, const std::string& p) {
  return fs::path(p).is_absolute() ? p : (base / p).lexically_normal().string();
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  configure_cpu_inference();
  spdlog::set_pattern("%^%l%$: %v");
  if (argc < 4) {
    std::fprintf(stderr, "usage: embedding_eval CATALOGUE_TSV QUERY_DIR OUT_DIR [options]\n");
    return 2;
  }
  const std::string tsv = argv[1], qdir = argv[2], out = argv[3];
  std::string weights = default_fingerprint_weights();
  int ref_hop = 50, query_hop = 10, threads = 2;
  double min_score = 0.0, floor = 0.1;
  int neighbours = 16;
  double max_speed = EmbeddingMatchOptions().max_speed_change;
  VectorIndexOptions vo;
  for (int i = 4; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--weights")
      weights = v;
    else if (k == "--ref-hop")
      ref_hop = std::stoi(v);
    else if (k == "--query-hop")
      query_hop = std::stoi(v);
    else if (k == "--index")
      vo.type = v;
    else if (k == "--min-score")
      min_score = std::stod(v);
    else if (k == "--floor")
      floor = std::stod(v);
    else if (k == "--max-speed")
      max_speed = std::stod(v);
    else if (k == "--neighbours")
      neighbours = std::stoi(v);
    else if (k == "--threads")
      threads = std::stoi(v);
    else if (k == "--lists")
      vo.ivf_lists = std::stoi(v);
    else if (k == "--probe")
      vo.ivf_probe = std::stoi(v);
    else if (k == "--ef")
      vo.hnsw_ef_search = std::stoi(v);
    else if (k == "--pq-bytes")
      vo.pq_bytes = std::stoi(v);
  }
  try {
    fs::create_directories(out);
    auto net = load_fingerprint_net(weights, threads);
    std::vector<std::string> ids;
    MemoryVectors vectors(net->dim());
    auto index = VectorIndex::create(net->dim(), vo);
    std::vector<float> all;  // for IVF training
    std::vector<int64_t> all_ids;
    std::ifstream list(tsv);
    if (!list) throw Error("cannot read " + tsv);
    const auto t_index = std::chrono::steady_clock::now();
    double audio_s = 0;
    for (std::string line; std::getline(list, line);) {
      if (line.empty() || line[0] == '#') continue;
      std::stringstream ss(line);
      std::string id, path;
      std::getline(ss, id, '\t');
      std::getline(ss, path, '\t');
      DecodeOptions o;
      AudioDecoder dec(resolve(fs::path(tsv).parent_path(), path), o);
      WindowEmbedder we(*net, ref_hop, 128);
      audio_s += double(dec.run(we)) / 16000;
      we.finish();
      const uint32_t r = uint32_t(ids.size());
      ids.push_back(id);
      for (size_t w = 0; w < we.windows(); ++w) all_ids.push_back(window_id(r, uint32_t(w)));
      all.insert(all.end(), we.vectors().begin(), we.vectors().end());
      vectors.add(we.vectors());
      if (ids.size() % 20 == 0) spdlog::info("embedded {} references", ids.size());
    }
    const auto t_build = std::chrono::steady_clock::now();
    if (index->needs_training()) index->train(all.data(), all_ids.size());
    index->add(all.data(), all_ids.size(), all_ids.data());
    const double build_ms = ms_since(t_build);
    const double index_ms = ms_since(t_index);
    // Recall of the approximate index: the share of the exact 16 nearest that it also returns,
    // over query-like vectors (the references' own windows, shifted by noise, are not needed:
    // every query window below is compared as it is searched).
    std::unique_ptr<VectorIndex> exact;
    if (vo.type != "flat") {
      exact = VectorIndex::create(net->dim(), VectorIndexOptions());
      exact->add(all.data(), all_ids.size(), all_ids.data());
    }
    double recall_sum = 0, search_ms = 0;
    size_t recall_n = 0;
    spdlog::info("{} references, {:.0f} s of audio, {} vectors in {:.1f} s ({:.0f}x realtime)",
                 ids.size(), audio_s, index->size(), index_ms / 1000, audio_s / (index_ms / 1000));

    EmbeddingMatchOptions mo;
    mo.min_score = min_score;
    mo.segment_floor = floor;
    mo.neighbours = neighbours;
    mo.max_speed_change = max_speed;
    EmbeddingMatcher matcher(*index, vectors, ref_hop * 0.01, mo);
    std::ifstream queries(qdir + "/queries.txt");
    std::ofstream results(out + "/results.jsonl");
    nlohmann::json timing = nlohmann::json::array();
    for (std::string q; std::getline(queries, q);) {
      if (q.empty()) continue;
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<float> samples = decode_to_vector(resolve(qdir, q));
      const double decode_ms = ms_since(t0);
      WindowEmbedder we(*net, query_hop, 64);
      we.consume(samples.data(), samples.size());
      we.finish();
      const double embed_ms = ms_since(t0) - decode_ms;
      const auto ts = std::chrono::steady_clock::now();
      auto matches =
          matcher.match(we.vectors().data(), we.windows(), query_hop * 0.01, we.window_seconds());
      search_ms += ms_since(ts);
      const double total_ms = ms_since(t0);  // the recall check below is not part of a query
      if (exact && we.windows() > 0) {
        const size_t n = we.windows();
        std::vector<float> s1(n * 16), s2(n * 16);
        std::vector<int64_t> i1(n * 16), i2(n * 16);
        exact->search(we.vectors().data(), n, 16, s1.data(), i1.data());
        index->search(we.vectors().data(), n, 16, s2.data(), i2.data());
        for (size_t r = 0; r < n; ++r) {
          size_t hit = 0;
          for (int a = 0; a < 16; ++a)
            for (int b = 0; b < 16; ++b) hit += i1[r * 16 + a] == i2[r * 16 + b];
          recall_sum += hit / 16.0;
          ++recall_n;
        }
      }
      nlohmann::json m = nlohmann::json::array();
      for (const auto& x : matches)
        m.push_back({{"ref", ids[x.reference]},
                     {"score", x.evidence},
                     {"similarity", x.score},
                     {"margin", x.margin},
                     {"windows", x.windows},
                     {"query_start", x.query_start},
                     {"query_end", x.query_end},
                     {"ref_start", x.reference_time(x.query_start)},
                     {"ref_end", x.reference_time(x.query_end)},
                     {"speed", x.speed},
                     {"pitch", 1.0}});
      results << nlohmann::json({{"query", q}, {"matches", m}}).dump() << "\n";
      timing.push_back({{"query", q},
                        {"duration_s", samples.size() / 16000.0},
                        {"decode_ms", decode_ms},
                        {"embed_ms", embed_ms},
                        {"total_ms", total_ms}});
    }
    std::ofstream(out + "/timing.json")
        << nlohmann::json({{"index_ms", index_ms},
                           {"build_ms", build_ms},
                           {"index_type", vo.type},
                           {"recall_at_16", recall_n ? recall_sum / recall_n : 1.0},
                           {"match_ms_total", search_ms},
                           {"audio_seconds_indexed", audio_s},
                           {"vectors", index->size()},
                           {"index_bytes", index->bytes()},
                           {"queries", timing}})
               .dump()
        << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "embedding_eval: %s\n", e.what());
    return 1;
  }
  return 0;
}
