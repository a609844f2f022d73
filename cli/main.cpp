// The `earmark` command line: a thin layer over libearmark. Results go to stdout, logs and
// progress to stderr; any failure is one clear line and a non-zero exit.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "earmark/common/cpu_setup.h"
#include "earmark/common/error.h"
#include "earmark/embeddings/fingerprint_net.h"
#include "earmark/engine/database.h"
#include "earmark/engine/indexer.h"
#include "earmark/engine/scanner.h"
#include "earmark/training/trainer.h"

namespace fs = std::filesystem;
using namespace earmark;

namespace {

const std::set<std::string> kMediaExtensions = {".wav", ".flac", ".mp3", ".m4a",  ".aac", ".ogg",
                                                ".oga", ".opus", ".wma", ".aiff", ".aif", ".mp4",
                                                ".mkv", ".webm", ".mov", ".avi",  ".mka", ".ac3",
                                                ".mod", ".xm",   ".it",  ".s3m",  ".ts"};

std::string default_index_dir() {
  const char* env = std::getenv("EARMARK_INDEX");
  return env && *env ? env : "earmark-index";
}

std::string resolve(const fs::path& base, const std::string& p) {
  fs::path path(p);
  return path.is_absolute() ? p : (base / path).lexically_normal().string();
}

// Media files under a folder, sorted, so runs are reproducible.
std::vector<std::string> media_in(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (kMediaExtensions.count(ext)) out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string f;
  while (std::getline(ss, f, '\t')) out.push_back(f);
  return out;
}

// Reference list: id<TAB>path[<TAB>content type[<TAB>title]], paths relative to the list's folder.
std::vector<IndexRequest> read_index_list(const std::string& list, ContentType default_type) {
  std::ifstream in(list);
  if (!in) throw Error("cannot read list " + list);
  fs::path base = fs::path(list).parent_path();
  std::vector<IndexRequest> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto f = split_tabs(line);
    if (f.size() < 2 || f[0].empty() || f[1].empty())
      throw Error(list + ":" + std::to_string(n) + ": expected id<TAB>path");
    IndexRequest r;
    r.id = f[0];
    r.path = resolve(base, f[1]);
    r.content_type = f.size() > 2 && !f[2].empty() ? parse_content_type(f[2]) : default_type;
    if (f.size() > 3) r.title = f[3];
    out.push_back(r);
  }
  return out;
}

// Query list: one path per line, relative to the list's folder.
std::vector<std::string> read_query_list(const std::string& list) {
  std::ifstream in(list);
  if (!in) throw Error("cannot read list " + list);
  fs::path base = fs::path(list).parent_path();
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    out.push_back(resolve(base, line));
  }
  return out;
}

// Training audio: folders (their media files), lists (.txt / .list: a path per line; .tsv:
// id<TAB>path, as for `index`), or files. List paths are relative to the list's folder.
std::vector<std::string> audio_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const std::string& in : inputs) {
    const std::string ext = fs::path(in).extension().string();
    if (fs::is_directory(in)) {
      auto m = media_in(in);
      out.insert(out.end(), m.begin(), m.end());
    } else if (ext == ".tsv") {
      for (const IndexRequest& r : read_index_list(in, ContentType::kMusic)) out.push_back(r.path);
    } else if (ext == ".txt" || ext == ".list") {
      auto q = read_query_list(in);
      out.insert(out.end(), q.begin(), q.end());
    } else {
      out.push_back(in);
    }
  }
  return out;
}

class Progress {
 public:
  explicit Progress(size_t total) : total_(total), tty_(::isatty(2)) {}
  void update(size_t done, const std::string& what) {
    if (tty_) {
      const int width = 30;
      int filled = total_ ? int(width * done / total_) : width;
      std::fprintf(stderr, "\r[%s%s] %zu/%zu %-40.40s", std::string(filled, '#').c_str(),
                   std::string(width - filled, ' ').c_str(), done, total_, what.c_str());
      if (done == total_) std::fprintf(stderr, "\n");
    } else {
      int pct = total_ ? int(100 * done / total_) : 100;
      if (pct >= next_pct_ || done == total_) {
        std::fprintf(stderr, "progress: %zu/%zu (%d%%)\n", done, total_, pct);
        next_pct_ = pct + 10;
      }
    }
    std::fflush(stderr);
  }

 private:
  size_t total_;
  bool tty_;
  int next_pct_ = 0;
};

// File names need not be UTF-8; JSON must be. Invalid bytes become U+FFFD instead of failing.
// kind=VALUE pairs separated by commas.
std::vector<std::pair<std::string, std::string>> kind_values(const std::string& list,
                                                             const std::string& option) {
  std::vector<std::pair<std::string, std::string>> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw Error(option + ": '" + item + "' is not kind=value");
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

// --model ast=PATH,clap=PATH and --model-windows clap=5/2.5.
std::vector<ModelChoice> parse_models(const std::string& models, const std::string& windows) {
  std::vector<ModelChoice> out;
  for (const auto& [kind, path] : kind_values(models, "--model")) {
    if (std::find(ClipModel::kinds().begin(), ClipModel::kinds().end(), kind) ==
        ClipModel::kinds().end())
      throw Error("--model: unknown model '" + kind + "' (ast, clap or panns)");
    for (const ModelChoice& m : out)
      if (m.kind == kind) throw Error("--model: " + kind + " given twice");
    out.push_back({kind, path, {}});
  }
  for (const auto& [kind, value] : kind_values(windows, "--model-windows")) {
    auto it =
        std::find_if(out.begin(), out.end(), [&](const ModelChoice& m) { return m.kind == kind; });
    if (it == out.end()) throw Error("--model-windows: " + kind + " is not among --model");
    const size_t slash = value.find('/');
    try {
      if (slash == std::string::npos) throw std::invalid_argument(value);
      it->windows.window_s = std::stod(value.substr(0, slash));
      it->windows.hop_s = std::stod(value.substr(slash + 1));
    } catch (const std::exception&) {
      throw Error("--model-windows: '" + value + "' is not WINDOW/HOP in seconds, e.g. 4/2");
    }
  }
  return out;
}

std::string dump(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

LandmarkParams params_with(const std::vector<std::string>& settings) {
  nlohmann::json j = LandmarkParams().to_json();
  for (const std::string& s : settings) {
    auto eq = s.find('=');
    if (eq == std::string::npos) throw Error("--set expects key=value, got '" + s + "'");
    std::string key = s.substr(0, eq), value = s.substr(eq + 1);
    if (!j.contains(key)) throw Error("unknown landmark setting '" + key + "'");
    try {
      j[key] = j[key].is_number_integer() ? nlohmann::json(std::stoi(value))
                                          : nlohmann::json(std::stod(value));
    } catch (const std::exception&) {
      throw Error("setting " + key + " needs a number, got '" + value + "'");
    }
  }
  return LandmarkParams::from_json(j);
}

void print_table(const ScanResult& r) {
  if (!r.ok) {
    std::printf("%s: ERROR %s\n", r.path.c_str(), r.error.c_str());
    return;
  }
  std::printf("%s (%.1f s): %zu match%s\n", r.path.c_str(), r.duration_s, r.matches.size(),
              r.matches.size() == 1 ? "" : "es");
  for (const ScanMatch& m : r.matches) {
    std::printf(
        "  %-12s %-9s query %7.2f-%7.2f s  ref %7.2f-%7.2f s  score %6.1f  speed %.3f"
        "  pitch %+.2f st  %s\n",
        m.ref_id.c_str(), to_string(m.content_type).c_str(), m.query_start, m.query_end,
        m.ref_start, m.ref_end, m.score, m.speed, m.pitch_semitones, m.title.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("earmark");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%^%l%$: %v");

  CLI::App app{"earmark: find catalogued music and sound logos inside audio and video files"};
  app.require_subcommand(1);
  std::string index_dir = default_index_dir();
  app.add_option("-i,--index", index_dir,
                 "index directory (default $EARMARK_INDEX or ./earmark-index)");
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "debug logging");

  // index
  auto* cmd_index = app.add_subcommand("index", "add reference files, folders or TSV lists");
  std::vector<std::string> index_inputs, lists, settings;
  std::string type_text = "music", id_opt, title_opt;
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  cmd_index->add_option("inputs", index_inputs, "files, folders, or .tsv lists (id<TAB>path)");
  cmd_index->add_option("--list", lists, "TSV list id<TAB>path[<TAB>type[<TAB>title]]")
      ->allow_extra_args(false);
  cmd_index->add_option("--type", type_text, "content type: music, trademark, other")
      ->check(CLI::IsMember({"music", "trademark", "jingle", "logo", "other"}));
  cmd_index->add_option("--id", id_opt, "reference id (a single file only)");
  cmd_index->add_option("--title", title_opt, "title (a single file only)");
  cmd_index->add_option("-j,--threads", threads, "parallel decoders")->check(CLI::Range(1, 256));
  cmd_index->add_option("--set", settings, "landmark setting key=value for a new index")
      ->allow_extra_args(false);
  std::string index_stages = "landmark,embedding", weights = default_fingerprint_weights();
  // 0.5 s: a query window is compared with the reference window nearest it, up to a quarter
  // second away, and the shipped network was trained on positives shifted by up to that much.
  int embedding_hop = 50;
  cmd_index
      ->add_option("--stages", index_stages,
                   "stages a new index holds: landmark or landmark,embedding")
      ->check(CLI::IsMember({"landmark", "landmark,embedding"}));
  cmd_index->add_option("--weights", weights, "fingerprint network weights (embedding stage)");
  cmd_index
      ->add_option("--embedding-hop", embedding_hop,
                   "reference window hop of a new index, in 10 ms frames (10-100)")
      ->check(CLI::Range(10, 100));
  // The published models: --model ast=PATH,clap=PATH,panns=PATH (converted checkpoints).
  std::string model_list, model_windows;
  cmd_index->add_option("--model", model_list,
                        "published models a new index also holds vectors of: "
                        "ast=PATH,clap=PATH,panns=PATH (checkpoints converted by "
                        "tools/convert_checkpoint.py; needed again to add to such an index)");
  cmd_index->add_option("--model-windows", model_windows,
                        "window/hop in seconds per model of a new index, e.g. clap=5/2.5 "
                        "(default 4/2 for each)");

  // scan
  auto* cmd_scan = app.add_subcommand("scan", "find catalogued references in files");
  std::vector<std::string> scan_inputs, scan_lists;
  std::string format = "json", timing_path;
  int stream = -1, max_matches = 50;
  double threshold = -1, threshold_trademark = -1, threshold_template = -1, threshold_growth = -1;
  double peak_significance = -1, peak_rescue_margin = -1, threshold_catalogue_growth = -1;
  double threshold_constellation = -1;
  bool no_templates = false, no_constellations = false;
  cmd_scan->add_option("inputs", scan_inputs, "files, folders, or - for stdin");
  cmd_scan->add_option("--list", scan_lists, "text file with one query path per line")
      ->allow_extra_args(false);
  cmd_scan->add_option("--format", format, "json, jsonl or table")
      ->check(CLI::IsMember({"json", "jsonl", "table"}));
  cmd_scan->add_option("--stream", stream, "audio stream index to decode (default: best)")
      ->check(CLI::Range(0, 1000));
  cmd_scan->add_option("--threshold", threshold, "minimum score for music and other references");
  cmd_scan->add_option("--threshold-trademark", threshold_trademark,
                       "minimum landmark score for trademark references (template scores are "
                       "rescaled onto it)");
  cmd_scan->add_option("--threshold-growth", threshold_growth,
                       "growth of the music/other threshold per e-fold of query length around 3 s "
                       "(0: one threshold for every length)");
  cmd_scan
      ->add_option("--threshold-catalogue-growth", threshold_catalogue_growth,
                   "growth of the music/other threshold per e-fold of the catalogue's hours "
                   "beyond 3.5 h (0: none)")
      ->check(CLI::Range(0.0, 100.0));
  cmd_scan
      ->add_option("--peak-significance", peak_significance,
                   "significance over wrong alignments at which a landmark match just below "
                   "its threshold is kept after checking all its reference's peaks (0: off)")
      ->check(CLI::Range(0.0, 1000.0));
  cmd_scan
      ->add_option("--peak-rescue-margin", peak_rescue_margin,
                   "how far below its threshold a landmark match may score and still be "
                   "checked by its peaks")
      ->check(CLI::Range(0.0, 1000.0));
  cmd_scan->add_option("--threshold-template", threshold_template,
                       "minimum score of a sound logo's template match, on the template's own "
                       "scale");
  cmd_scan->add_option("--threshold-constellation", threshold_constellation,
                       "minimum score of a sound logo's constellation (peak) match, on its own "
                       "scale (-log10 of its chance probability)");
  cmd_scan->add_flag("--no-templates", no_templates,
                     "do not match sound logos by their dense templates");
  cmd_scan->add_flag("--no-constellations", no_constellations,
                     "do not match sound logos by their peak constellations");
  cmd_scan->add_option("--max-matches", max_matches, "matches reported per file")
      ->check(CLI::Range(1, 10000));
  cmd_scan->add_option("--timing", timing_path, "write per-query timings (JSON) to this file");
  std::string scan_stages = "landmark,embedding";
  double threshold_embedding = std::nan("");
  cmd_scan
      ->add_option("--stages", scan_stages,
                   "landmark, landmark,embedding (where the index has vectors), embedding "
                   "(alone), or models (the published models of --model alone)")
      ->check(CLI::IsMember({"landmark", "landmark,embedding", "embedding", "models"}));
  cmd_scan->add_option("--weights", weights, "fingerprint network weights (embedding stage)");
  cmd_scan->add_option("--model", model_list,
                       "published models to score matches with and search by, of those the index "
                       "holds: ast=PATH,clap=PATH,panns=PATH");
  double threshold_model = std::nan("");
  bool model_search = false;
  cmd_scan->add_flag("--model-search", model_search,
                     "let the published models search when the other stages find no music "
                     "(always on with --stages models)");
  cmd_scan->add_option("--threshold-model", threshold_model,
                       "fused margin a match found by the published models alone needs");
  bool embedding_evidence = false;
  cmd_scan->add_flag("--embedding-evidence", embedding_evidence,
                     "score landmark matches by embedding too (evidence; slower)");
  cmd_scan->add_option("--threshold-embedding", threshold_embedding,
                       "decision value an embedding-only match of a 1 s query needs (its mean "
                       "margin + 0.025 ln of its length in 0.1 s)");
  double threshold_embedding_growth = std::nan("");
  cmd_scan->add_option("--threshold-embedding-growth", threshold_embedding_growth,
                       "growth of that threshold per e-fold of query length");
  ScanOptions scan_defaults;
  int query_hop = scan_defaults.embedding_hop_frames,
      coarse_hop = scan_defaults.embedding_coarse_hop_frames,
      embedding_threads = scan_defaults.embedding_threads;
  double refine_share = scan_defaults.embedding_refine_share;
  cmd_scan->add_option("--embedding-hop", query_hop, "query window hop in 10 ms frames")
      ->check(CLI::Range(1, 100));
  cmd_scan
      ->add_option("--embedding-coarse-hop", coarse_hop,
                   "hop of the coarse first pass in 10 ms frames (0: fine pass only)")
      ->check(CLI::Range(0, 1000));
  cmd_scan
      ->add_option("--embedding-refine-share", refine_share,
                   "share of the embedding threshold the coarse pass must reach to refine")
      ->check(CLI::Range(0.0, 1.0));
  cmd_scan
      ->add_option("--embedding-threads", embedding_threads,
                   "threads of the embedding network (0: one per core)")
      ->check(CLI::Range(0, 256));

  auto* cmd_list = app.add_subcommand("list", "list the catalogue");
  std::string list_format = "table";
  cmd_list->add_option("--format", list_format, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  auto* cmd_remove = app.add_subcommand("remove", "remove references by id");
  std::vector<std::string> remove_ids;
  cmd_remove->add_option("ids", remove_ids, "reference ids")->required();
  auto* cmd_info = app.add_subcommand("info", "show one reference");
  std::string info_id;
  cmd_info->add_option("id", info_id, "reference id")->required();
  auto* cmd_stats = app.add_subcommand("stats", "index statistics");
  bool verify = false;
  cmd_stats->add_flag("--verify", verify, "also verify every segment's checksum");
  auto* cmd_compact = app.add_subcommand("compact", "merge segments and drop removed references");

  // train
  auto* cmd_train =
      app.add_subcommand("train", "train the fingerprint network (resumes from OUT's checkpoint)");
  std::vector<std::string> train_music, train_noise, train_speech;
  TrainOptions train;
  std::string channels_text;
  cmd_train->add_option("--music", train_music, "training music: folders, lists or files")
      ->required();
  cmd_train->add_option("--noise", train_noise, "effects and ambience for augmentation");
  cmd_train->add_option("--speech", train_speech, "speech (recorded and TTS) for augmentation");
  cmd_train->add_option("-o,--out", train.out_dir, "output folder (caches, checkpoint, weights)")
      ->required();
  cmd_train->add_option("--steps", train.steps, "optimiser steps in all")
      ->check(CLI::Range(1, 10000000));
  cmd_train->add_option("--pairs", train.train_pairs, "cached augmented training pairs");
  cmd_train->add_option("--max-offset", train.augment.max_offset_s,
                        "time jitter of the degraded window, +- seconds (at least half the "
                        "reference hop the network will be indexed with)");
  cmd_train->add_option("--val-pairs", train.val_pairs, "held-out validation pairs");
  cmd_train->add_option("--batch", train.batch_pairs, "pairs per step")->check(CLI::Range(2, 8192));
  cmd_train->add_option("--lr", train.learning_rate, "peak learning rate");
  cmd_train->add_option("--temperature", train.temperature, "NT-Xent temperature");
  cmd_train->add_option("--warmup", train.warmup_steps, "warm-up steps");
  cmd_train->add_option("--seed", train.seed, "seed of the pairs, the order and the weights");
  cmd_train->add_option("--dim", train.net.dim, "embedding dimension");
  cmd_train->add_option("--frames", train.net.window_frames, "fbank frames per window");
  cmd_train->add_option("--channels", channels_text, "channels per stage, e.g. 24,48,96,160,256");
  cmd_train->add_option("--device", train.device, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd_train->add_option("--name", train.name, "model name recorded in the weights");
  cmd_train->add_option("--checkpoint-every", train.checkpoint_every, "steps between checkpoints");
  cmd_train->add_option("--validate-every", train.validate_every, "steps between validations");
  cmd_train->add_option("--stop-after", train.stop_after_steps,
                        "end this run after so many steps (resume later)");
  cmd_train->add_option("--max-minutes", train.max_minutes, "end this run after so many minutes");
  cmd_train->add_option("-j,--threads", train.threads, "CPU threads")->check(CLI::Range(1, 256));
  bool prepare_only = false;
  cmd_train->add_flag(
      "--prepare-only", prepare_only,
      "make the pair files in OUT and stop (earmark-train trains on them elsewhere)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (verbose) spdlog::set_level(spdlog::level::debug);
  configure_cpu_inference();

  try {
    if (*cmd_index) {
      ContentType type = parse_content_type(type_text);
      std::vector<IndexRequest> requests;
      for (const std::string& l : lists) {
        auto r = read_index_list(l, type);
        requests.insert(requests.end(), r.begin(), r.end());
      }
      for (const std::string& in : index_inputs) {
        if (fs::path(in).extension() == ".tsv" && fs::is_regular_file(in)) {
          auto r = read_index_list(in, type);
          requests.insert(requests.end(), r.begin(), r.end());
        } else if (fs::is_directory(in)) {
          for (const std::string& f : media_in(in))
            requests.push_back({"", f, "", type, nlohmann::json::object()});
        } else {
          requests.push_back({"", in, "", type, nlohmann::json::object()});
        }
      }
      if (requests.empty()) throw Error("nothing to index: give files, folders or a TSV list");
      if ((!id_opt.empty() || !title_opt.empty()) && requests.size() != 1)
        throw Error("--id and --title apply to a single file");
      if (!id_opt.empty()) requests[0].id = id_opt;
      if (!title_opt.empty()) requests[0].title = title_opt;
      LandmarkParams params = params_with(settings);
      auto db = Database::open(index_dir, true, settings.empty() ? nullptr : &params);
      Progress progress(requests.size());
      IndexOptions opts;
      opts.threads = threads;
      if (index_stages == "landmark,embedding" && !db->embedding_spec()) {
        if (db->references().empty()) {
          auto net = load_fingerprint_net(weights, 1);
          db->enable_embeddings(embedding_spec_of(*net, weights, embedding_hop));
        } else {
          spdlog::info("index {} was built without the embedding stage: landmarks only", index_dir);
        }
      }
      if (db->embedding_spec()) opts.embedding_weights = weights;
      opts.models = parse_models(model_list, model_windows);
      if (!opts.models.empty() && db->model_specs().empty()) {
        if (!db->references().empty())
          throw Error("index " + index_dir +
                      " was built without the published models; build a new index to use them");
        nlohmann::json specs = nlohmann::json::object();
        for (const ModelChoice& m : opts.models) {
          auto model = ClipModel::load(m.kind, m.weights, 1);
          m.windows.validate(model->longest_window_s());
          specs[m.kind] = model_spec_of(*model, m.weights, m.windows);
        }
        db->enable_models(specs);
      }
      for (const ModelChoice& m : opts.models) {
        if (!db->model_specs().contains(m.kind))
          throw Error("index " + index_dir + " holds no " + m.kind +
                      " vectors: models are chosen when an index is made");
        const nlohmann::json& spec = db->model_specs().at(m.kind);
        const bool asked = model_windows.find(m.kind + "=") != std::string::npos;
        const ClipWindows kept = model_windows_of(spec);
        if (asked && (kept.window_s != m.windows.window_s || kept.hop_s != m.windows.hop_s))
          spdlog::warn("index {} keeps its {} windows ({} s every {} s)", index_dir, m.kind,
                       kept.window_s, kept.hop_s);
      }
      opts.progress = [&](size_t done, size_t total, const IndexResult& r) {
        if (r.outcome == IndexOutcome::kFailed)
          spdlog::error("{}", r.message);
        else if (r.outcome == IndexOutcome::kAlreadyPresent)
          spdlog::info("{}: {}", r.request.path, r.message);
        progress.update(done, fs::path(r.request.path).filename().string());
      };
      auto t0 = std::chrono::steady_clock::now();
      IndexSummary s = index_files(*db, requests, opts);
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      nlohmann::json out = {{"added", s.added},
                            {"already_present", s.present},
                            {"failed", s.failed},
                            {"audio_seconds", std::round(s.audio_seconds * 10) / 10},
                            {"wall_seconds", std::round(secs * 100) / 100},
                            {"capped_entries", s.capped_entries}};
      std::cout << dump(out) << std::endl;
      return s.failed ? 1 : 0;
    }
    if (*cmd_scan) {
      std::vector<std::string> queries;
      for (const std::string& l : scan_lists) {
        auto q = read_query_list(l);
        queries.insert(queries.end(), q.begin(), q.end());
      }
      for (const std::string& in : scan_inputs) {
        if (in != "-" && fs::is_directory(in)) {
          auto m = media_in(in);
          queries.insert(queries.end(), m.begin(), m.end());
        } else {
          queries.push_back(in);
        }
      }
      if (queries.empty()) throw Error("nothing to scan: give files, folders, a list or -");
      auto db = Database::open(index_dir, false);
      ScanOptions opts;
      opts.stream_index = stream;
      opts.max_matches = max_matches;
      if (threshold >= 0) opts.min_score_music = opts.min_score_other = threshold;
      if (threshold_trademark >= 0) opts.min_score_trademark = threshold_trademark;
      if (threshold_template >= 0) opts.logo.min_score = threshold_template;
      if (threshold_constellation >= 0) opts.constellation.min_score = threshold_constellation;
      if (threshold_growth >= 0) opts.threshold_growth = threshold_growth;
      if (threshold_catalogue_growth >= 0)
        opts.threshold_catalogue_growth = threshold_catalogue_growth;
      if (peak_significance >= 0) opts.peak_significance = peak_significance;
      if (peak_rescue_margin >= 0) opts.peak_rescue_margin = peak_rescue_margin;
      opts.logo_templates = !no_templates;
      opts.embedding = scan_stages != "landmark" && scan_stages != "models";
      opts.landmarks = scan_stages != "embedding" && scan_stages != "models";
      opts.models = parse_models(model_list, "");
      if (scan_stages == "models" && opts.models.empty())
        throw Error("--stages models needs --model kind=PATH");
      if (!std::isnan(threshold_model)) opts.model_min_margin = threshold_model;
      opts.model_search = model_search || scan_stages == "models";
      opts.embedding_weights = weights;
      opts.embedding_verify = embedding_evidence;
      opts.embedding_hop_frames = query_hop;
      opts.embedding_coarse_hop_frames = coarse_hop;
      opts.embedding_refine_share = refine_share;
      opts.embedding_threads = embedding_threads;
      if (!std::isnan(threshold_embedding)) opts.embedding_threshold = threshold_embedding;
      if (!std::isnan(threshold_embedding_growth))
        opts.embedding_threshold_growth = threshold_embedding_growth;
      opts.logo_constellations = !no_constellations;
      Scanner scanner(*db, opts);
      nlohmann::json all = nlohmann::json::array(), timing = nlohmann::json::array();
      size_t failed = 0;
      auto t0 = std::chrono::steady_clock::now();
      Progress progress(queries.size());
      for (size_t i = 0; i < queries.size(); ++i) {
        ScanResult r = scanner.scan(queries[i]);
        if (!r.ok) {
          ++failed;
          spdlog::error("{}", r.error);
        }
        timing.push_back({{"query", r.path},
                          {"total_ms", r.total_ms},
                          {"decode_ms", r.decode_ms},
                          {"duration_s", r.duration_s},
                          {"lookups", r.lookups}});
        if (format == "jsonl") {
          std::cout << dump(to_json(r)) << "\n" << std::flush;
        } else if (format == "table") {
          print_table(r);
          std::fflush(stdout);
        } else {
          all.push_back(to_json(r));
        }
        if (queries.size() > 1) progress.update(i + 1, fs::path(queries[i]).filename().string());
      }
      if (format == "json") std::cout << dump(all, 2) << std::endl;
      if (!timing_path.empty()) {
        double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::ofstream t(timing_path);
        t << dump(nlohmann::json({{"wall_s", wall}, {"queries", timing}})) << "\n";
        if (!t) throw Error("cannot write " + timing_path);
      }
      return failed ? 1 : 0;
    }
    if (*cmd_train) {
      if (!channels_text.empty())
        train.net.channels = FingerprintNetConfig::parse_channels(channels_text);
      TrainingData data{audio_inputs(train_music), audio_inputs(train_noise),
                        audio_inputs(train_speech)};
      if (prepare_only) {
        const PreparedPairs pairs = prepare_training_pairs(data, train);
        std::cout << dump(nlohmann::json({{"train_pairs", training_pairs_path(train.out_dir)},
                                          {"train_count", pairs.train.size()},
                                          {"val_pairs", validation_pairs_path(train.out_dir)},
                                          {"val_count", pairs.val.size()}}))
                  << std::endl;
        return 0;
      }
      TrainReport r = train_fingerprint_net(data, train);
      std::cout << dump(nlohmann::json({{"steps", r.steps},
                                        {"loss", r.loss},
                                        {"val_top1", r.val_top1},
                                        {"pairs_per_second", r.pairs_per_second},
                                        {"weights", r.weights}}))
                << std::endl;
      return 0;
    }
    if (*cmd_list) {
      auto db = Database::open(index_dir, false);
      if (list_format == "json") {
        nlohmann::json a = nlohmann::json::array();
        for (const Reference& r : db->references())
          a.push_back({{"id", r.id},
                       {"title", r.title},
                       {"content_type", to_string(r.content_type)},
                       {"duration_s", r.duration_s}});
        std::cout << dump(a, 2) << std::endl;
      } else {
        for (const Reference& r : db->references())
          std::printf("%-16s %-9s %8.1f s  %s\n", r.id.c_str(), to_string(r.content_type).c_str(),
                      r.duration_s, r.title.c_str());
      }
      return 0;
    }
    if (*cmd_remove) {
      auto db = Database::open(index_dir, false);
      auto removed = db->remove(remove_ids);
      std::set<std::string> done;
      for (const Reference& r : removed) done.insert(r.id);
      int missing = 0;
      for (const std::string& id : remove_ids) {
        if (done.count(id)) {
          std::printf("removed %s\n", id.c_str());
        } else {
          spdlog::error("no reference with id '{}'", id);
          ++missing;
        }
      }
      return missing ? 1 : 0;
    }
    if (*cmd_info) {
      auto db = Database::open(index_dir, false);
      auto r = db->catalogue().find_id(info_id);
      if (!r) throw Error("no reference with id '" + info_id + "'");
      nlohmann::json j = {{"id", r->id},
                          {"title", r->title},
                          {"content_type", to_string(r->content_type)},
                          {"source_path", r->source_path},
                          {"duration_s", r->duration_s},
                          {"content_hash", r->content_hash},
                          {"added_at", r->added_at},
                          {"metadata", r->metadata}};
      std::cout << dump(j, 2) << std::endl;
      return 0;
    }
    if (*cmd_stats) {
      auto db = Database::open(index_dir, false);
      DatabaseStats s = db->stats();
      double hours = s.audio_seconds / 3600.0;
      nlohmann::json j = {
          {"index", db->dir()},
          {"references", s.references},
          {"audio_hours", std::round(hours * 1000) / 1000},
          {"segments", s.segments},
          {"landmarks", s.entries},
          {"segment_bytes", s.segment_bytes},
          {"catalogue_bytes", s.catalogue_bytes},
          {"mb_per_hour", hours > 0 ? std::round(s.segment_bytes / hours / 1e4) / 100 : 0.0},
          {"logo_templates", db->logo_templates().size()},
          {"removed_awaiting_compaction", s.removed_pending},
          {"settings", db->params().to_json()}};
      int rc = 0;
      if (verify) {
        auto bad = db->verify();
        j["damaged_segments"] = bad;
        rc = bad.empty() ? 0 : 1;
      }
      std::cout << dump(j, 2) << std::endl;
      return rc;
    }
    if (*cmd_compact) {
      auto db = Database::open(index_dir, false);
      db->compact();
      DatabaseStats s = db->stats();
      std::printf("compacted: %zu references, %zu landmarks in %zu segment(s)\n", s.references,
                  s.entries, s.segments);
      return 0;
    }
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::error("unexpected failure: {}", e.what());
    return 3;
  }
  return 0;
}
