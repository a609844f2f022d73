#include "earmark/embeddings/clip_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "earmark/common/error.h"
#include "earmark/embeddings/ast_model.h"
#include "earmark/embeddings/clap_htsat.h"
#include "earmark/embeddings/panns_cnn14.h"
#include "earmark/features/kaldi_fbank.h"
#include "earmark/features/slaney_logmel.h"

namespace earmark {
namespace {

// Scales a vector to unit length in place (a silent clip's zero vector stays zero).
void normalise(float* v, size_t n) {
  double norm = 0;
  for (size_t i = 0; i < n; ++i) norm += double(v[i]) * v[i];
  if (norm <= 0) return;
  const float scale = float(1.0 / std::sqrt(norm));
  for (size_t i = 0; i < n; ++i) v[i] *= scale;
}

void check_length(const ClipModel& model, size_t length) {
  if (length < model.min_clip_samples() || length > model.max_clip_samples())
    throw Error(model.kind() + ": a clip of " + std::to_string(length) + " samples; it takes " +
                std::to_string(model.min_clip_samples()) + " to " +
                (model.max_clip_samples() == std::numeric_limits<size_t>::max()
                     ? std::string("any number of")
                     : std::to_string(model.max_clip_samples())) +
                " at " + std::to_string(model.sample_rate()) + " Hz");
}

// AST: the 16 kHz Kaldi fbank of the clip, zero-padded (or cut) to 1024 frames in the log domain
// and normalised, as the original's inference does; the pooled (cls + dist) / 2 embedding.
class AstClips : public ClipModel {
 public:
  AstClips(const std::string& path, int threads) : model_(AstModel::load(path, threads)) {}
  std::string kind() const override { return "ast"; }
  int sample_rate() const override { return 16000; }
  int dim() const override { return model_->embedding_dim(); }
  ClipWindows default_windows() const override { return {}; }
  size_t min_clip_samples() const override { return 400; }  // one 25 ms frame
  size_t max_clip_samples() const override {
    return 400 + 160 * (AstModel::kFrames - 1);  // 1024 frames: 10.24 s
  }
  void embed(const float* clips, size_t count, size_t length, float* out) override {
    check_length(*this, length);
    std::vector<float> inputs;
    inputs.reserve(count * AstModel::kFrames * AstModel::kMelBins);
    for (size_t i = 0; i < count; ++i) {
      const std::vector<float> input = ast_input_1024(fbank_.compute(clips + i * length, length));
      inputs.insert(inputs.end(), input.begin(), input.end());
    }
    const std::vector<AstOutput> outputs = model_->forward_batch(inputs.data(), count);
    for (size_t i = 0; i < count; ++i) {
      std::copy(outputs[i].pooled.begin(), outputs[i].pooled.end(), out + i * size_t(dim()));
      normalise(out + i * size_t(dim()), size_t(dim()));
    }
  }

 private:
  std::unique_ptr<AstModel> model_;
  KaldiFbank fbank_;
};

// CLAP: the clip repeat-padded to 10 s at 48 kHz; the normalised 512-d joint embedding.
class ClapClips : public ClipModel {
 public:
  ClapClips(const std::string& path, int threads)
      : model_(ClapHtsat::load(path, threads)), logmel_(model_->front_end()) {}
  std::string kind() const override { return "clap"; }
  int sample_rate() const override { return 48000; }
  int dim() const override { return model_->joint_dim(); }
  ClipWindows default_windows() const override { return {}; }
  size_t min_clip_samples() const override { return 480; }  // 10 ms
  size_t max_clip_samples() const override { return kClapClipSamples; }
  void embed(const float* clips, size_t count, size_t length, float* out) override {
    check_length(*this, length);
    std::vector<float> logmels;
    for (size_t i = 0; i < count; ++i) {
      const std::vector<float> clip = clap_repeat_pad(clips + i * length, length);
      const std::vector<float> logmel = logmel_.compute(clip.data(), clip.size());
      logmels.insert(logmels.end(), logmel.begin(), logmel.end());
    }
    const std::vector<ClapOutput> outputs = model_->forward_logmel(logmels.data(), count);
    for (size_t i = 0; i < count; ++i)
      std::copy(outputs[i].joint.begin(), outputs[i].joint.end(), out + i * size_t(dim()));
  }

 private:
  std::unique_ptr<ClapHtsat> model_;
  SlaneyLogMel logmel_;
};

// PANNs CNN14: the clip as is, at the checkpoint's rate (32 kHz, or 16 kHz for Cnn14_16k); the
// 2048-d embedding, normalised.
class PannsClips : public ClipModel {
 public:
  PannsClips(const std::string& path, int threads)
      : model_(PannsCnn14::load(path, threads)), logmel_(model_->front_end()) {}
  std::string kind() const override { return "panns"; }
  int sample_rate() const override { return model_->front_end().sample_rate; }
  int dim() const override { return model_->embedding_dim(); }
  ClipWindows default_windows() const override { return {}; }
  size_t min_clip_samples() const override {
    // 32 log-mel frames for the five poolings: 1 + n / hop >= 32.
    return size_t(31 * model_->front_end().hop);
  }
  size_t max_clip_samples() const override { return std::numeric_limits<size_t>::max(); }
  void embed(const float* clips, size_t count, size_t length, float* out) override {
    check_length(*this, length);
    std::vector<float> logmels;
    for (size_t i = 0; i < count; ++i) {
      const std::vector<float> logmel = logmel_.compute(clips + i * length, length);
      logmels.insert(logmels.end(), logmel.begin(), logmel.end());
    }
    const size_t frames = logmel_.num_frames(length);
    const std::vector<Cnn14Output> outputs =
        model_->forward_logmel_batch(logmels.data(), count, frames);
    for (size_t i = 0; i < count; ++i) {
      std::copy(outputs[i].embedding.begin(), outputs[i].embedding.end(), out + i * size_t(dim()));
      normalise(out + i * size_t(dim()), size_t(dim()));
    }
  }

 private:
  std::unique_ptr<PannsCnn14> model_;
  SlaneyLogMel logmel_;
};

}  // namespace

void ClipWindows::validate(double longest_s) const {
  if (!(window_s >= 0.5 && window_s <= longest_s))
    throw Error("a model window of " + std::to_string(window_s) + " s; it must be 0.5 to " +
                std::to_string(longest_s) + " s");
  if (!(hop_s > 0 && hop_s <= window_s))
    throw Error("a model hop of " + std::to_string(hop_s) + " s; it must be above 0 and at most " +
                "the window (" + std::to_string(window_s) + " s)");
}

double ClipModel::longest_window_s() const {
  return std::min(double(max_clip_samples()), 60.0 * sample_rate()) / sample_rate();
}

const std::vector<std::string>& ClipModel::kinds() {
  static const std::vector<std::string> all = {"ast", "clap", "panns"};
  return all;
}

std::string ClipModel::how_to_get(const std::string& kind) {
  const std::string convert =
      " and convert it: /usr/bin/python3 tools/convert_checkpoint.py <downloaded file> "
      "<out>.safetensors (needs the python3-torch package)";
  if (kind == "ast")
    return "download audioset_10_10_0.4593.pth (github.com/YuanGongND/ast, the README's "
           "\"Pretrained Models\"), or pytorch_model.bin of "
           "MIT/ast-finetuned-audioset-10-10-0.4593 "
           "on huggingface.co," +
           convert;
  if (kind == "clap")
    return "download 630k-audioset-best.pt (huggingface.co/lukewys/laion_clap, a non-fusion "
           "HTSAT-tiny checkpoint), or model.safetensors of laion/clap-htsat-unfused (usable as "
           "is)," +
           convert;
  if (kind == "panns")
    return "download Cnn14_mAP=0.431.pth (zenodo.org/record/3987831, the PANNs release; "
           "Cnn14_16k_mAP=0.438.pth for the 16 kHz model)," +
           convert;
  return "the kinds are ast, clap and panns";
}

std::unique_ptr<ClipModel> ClipModel::load(const std::string& kind, const std::string& path,
                                           int threads) {
  if (std::find(kinds().begin(), kinds().end(), kind) == kinds().end())
    throw Error("unknown model '" + kind + "': the published models are ast, clap and panns");
  if (path.empty() || !std::filesystem::exists(path))
    throw Error(kind + " weights " + (path.empty() ? "not given" : "not found at " + path) + ": " +
                how_to_get(kind));
  if (kind == "ast") return std::make_unique<AstClips>(path, threads);
  if (kind == "clap") return std::make_unique<ClapClips>(path, threads);
  return std::make_unique<PannsClips>(path, threads);
}

std::vector<float> ClipEmbedding::starts_s() const {
  std::vector<float> out;
  for (const ClipSpan& span : spans) out.push_back(float(double(span.start) / sample_rate));
  return out;
}

ClipStream::ClipStream(ClipModel& model, const ClipWindows& windows, size_t batch)
    : model_(model), batch_(std::max<size_t>(1, batch)) {
  const double rate = model.sample_rate();
  windows.validate(model.longest_window_s());
  window_ = size_t(std::lround(windows.window_s * rate));
  hop_ = std::max<size_t>(1, size_t(std::lround(windows.hop_s * rate)));
  out_.sample_rate = model.sample_rate();
}

void ClipStream::consume(const float* samples, size_t count) {
  buffer_.insert(buffer_.end(), samples, samples + count);
  total_ += count;
  while (next_start_ + window_ <= total_) {
    cut(next_start_, window_);
    next_start_ += hop_;
  }
  // Keep what the next grid window and a final end-aligned window may still need.
  const size_t keep_from = std::min(next_start_, total_ > window_ ? total_ - window_ : 0);
  while (buffer_start_ < keep_from && !buffer_.empty()) buffer_.pop_front(), ++buffer_start_;
}

void ClipStream::cut(size_t start, size_t length) {
  if (length < model_.min_clip_samples()) return;
  if (pending_count_ > 0 && length != pending_length_) flush();
  pending_length_ = length;
  const size_t offset = start - buffer_start_;
  pending_.insert(pending_.end(), buffer_.begin() + long(offset),
                  buffer_.begin() + long(offset + length));
  out_.spans.push_back({start, length});
  if (++pending_count_ == batch_) flush();
}

void ClipStream::flush() {
  if (pending_count_ == 0) return;
  const size_t dim = size_t(model_.dim());
  const size_t at = out_.vectors.size();
  out_.vectors.resize(at + pending_count_ * dim);
  model_.embed(pending_.data(), pending_count_, pending_length_, out_.vectors.data() + at);
  pending_.clear();
  pending_count_ = 0;
}

ClipEmbedding ClipStream::finish() {
  if (total_ > 0 && total_ < window_) {
    cut(0, total_);
  } else if (total_ >= window_ && next_start_ - hop_ + window_ < total_) {
    // The grid's last window (at next_start_ - hop_) ends short of the end.
    cut(total_ - window_, window_);
  }
  flush();
  return std::move(out_);
}

ClipEmbedding embed_recording(ClipModel& model, const std::vector<float>& samples,
                              const ClipWindows& windows, size_t batch) {
  ClipStream stream(model, windows, batch);
  stream.consume(samples.data(), samples.size());
  return stream.finish();
}

}  // namespace earmark
