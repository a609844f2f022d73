#pragma once
// The published models (AST, LAION-CLAP, PANNs CNN14) behind one interface for identification:
// clips of a recording at the model's own sample rate in, one unit vector per clip out, each clip
// fed to the model as the original inference code feeds a clip of that length (AST: fbank
// zero-padded to 1024 frames; CLAP: repeat-padded to 10 s; CNN14: as is). And the windows a
// recording is cut into. This header is free of libtorch.
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace earmark {

// Overlapping windows over a recording, in seconds.
struct ClipWindows {
  double window_s = 4.0;
  double hop_s = 2.0;  // 50 % overlap
  // Throws earmark::Error unless 0.5 <= window_s <= `longest_s` and 0 < hop_s <= window_s.
  void validate(double longest_s) const;
};

// A published model to use (`--model kind=PATH`), and its windows.
struct ModelChoice {
  std::string kind;     // ast, clap, panns
  std::string weights;  // converted checkpoint
  ClipWindows windows;
};

class ClipModel {
 public:
  // `kind`: "ast", "clap" or "panns"; `path`: its converted checkpoint
  // (tools/convert_checkpoint.py). Throws earmark::Error for an unknown kind, a missing file
  // (saying how to get and convert the weights) or a checkpoint that is not of that model.
  static std::unique_ptr<ClipModel> load(const std::string& kind, const std::string& path,
                                         int threads = 1);
  static const std::vector<std::string>& kinds();
  // Where the published weights of a kind are, and how to convert them (for messages and --help).
  static std::string how_to_get(const std::string& kind);
  virtual ~ClipModel() = default;

  virtual std::string kind() const = 0;
  virtual int sample_rate() const = 0;
  virtual int dim() const = 0;
  virtual ClipWindows default_windows() const = 0;
  // Clip lengths the model takes: the shortest, and the longest it takes whole (AST: 1024
  // frames; CLAP: 10 s; CNN14: no limit of its own).
  virtual size_t min_clip_samples() const = 0;
  virtual size_t max_clip_samples() const = 0;
  // The longest window it is given: the longest clip it takes whole, at most a minute.
  double longest_window_s() const;

  // `count` clips of `length` samples each at sample_rate(), back to back, embedded in one batch;
  // out: count x dim() row-major, each row of unit length (zero for a silent clip). Throws
  // earmark::Error for a length outside [min_clip_samples(), max_clip_samples()]. Not
  // thread-safe: one model per thread.
  virtual void embed(const float* clips, size_t count, size_t length, float* out) = 0;
};

// A part of a recording: its first sample and its length.
struct ClipSpan {
  size_t start = 0, length = 0;
};

// A recording's vectors under a model: one per window the model can take (windows shorter than
// min_clip_samples() are left out).
struct ClipEmbedding {
  std::vector<ClipSpan> spans;
  std::vector<float> vectors;  // spans.size() x dim row-major
  std::vector<float> starts_s() const;
  int sample_rate = 0;
};

// Embeds a recording's windows while it decodes (samples at the model's rate): whole windows are
// cut as soon as they are complete and embedded `batch` at a time, so memory holds one window
// and one batch whatever the length of the recording. The windows: one every hop while a whole
// window fits; when the end is not covered by then, one more whole window ending at the end
// (embedded like the others, its start off the grid); a recording shorter than a window is one
// clip of all of it (fed as the model takes a short clip). None for an empty recording.
class ClipStream {
 public:
  // Throws earmark::Error for windows the model cannot take (ClipWindows::validate).
  ClipStream(ClipModel& model, const ClipWindows& windows, size_t batch = 8);
  void consume(const float* samples, size_t count);
  // Embeds the rest: the window ending at the end where the grid left it uncovered, or the whole
  // recording when it is shorter than a window.
  ClipEmbedding finish();

 private:
  void cut(size_t start, size_t length);
  void flush();

  ClipModel& model_;
  size_t window_, hop_, batch_;
  std::deque<float> buffer_;  // samples from buffer_start_ on
  size_t buffer_start_ = 0, total_ = 0, next_start_ = 0;
  std::vector<float> pending_;  // cut clips of one length awaiting a batch
  size_t pending_length_ = 0, pending_count_ = 0;
  ClipEmbedding out_;
};

ClipEmbedding embed_recording(ClipModel& model, const std::vector<float>& samples,
                              const ClipWindows& windows, size_t batch = 8);

}  // namespace earmark
