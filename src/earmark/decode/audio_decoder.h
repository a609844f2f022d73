#pragma once
// Streaming decoder: any file or stream FFmpeg reads -> 16 kHz (or another rate) mono float.
// Audio is handed to an AudioConsumer block by block while it decodes, so memory stays bounded
// whatever the length of the input.
#include <cstddef>
#include <string>
#include <vector>

namespace earmark {

// Receives decoded, resampled (and, if asked, level-normalised) mono samples in order.
// The resampler is soxr (via libswresample); the downmix is the equal-weight average of all
// channels, so it never adds gain.
class AudioConsumer {
 public:
  virtual ~AudioConsumer() = default;
  virtual void consume(const float* samples, size_t count) = 0;
};

struct DecodeOptions {
  int sample_rate = 16000;      // output rate, Hz
  int stream_index = -1;        // -1: FFmpeg's best audio stream; else the absolute stream index
                                // (an Error if it does not exist or is not audio)
  bool normalise = true;        // streaming level normalisation (see LevelNormaliser)
  size_t block_samples = 8192;  // size of the blocks handed to AudioConsumer::consume
};

struct AudioInfo {
  std::string path;       // as given ("-" = stdin)
  std::string container;  // e.g. "ogg", "mov,mp4,m4a,3gp,3g2,mj2"
  std::string codec;      // e.g. "vorbis"
  int stream_index = -1;  // the stream that was decoded
  int source_sample_rate = 0;
  int source_channels = 0;
  double duration_s = -1.0;  // from the container; -1 when unknown (streams)
};

// FFmpeg's own log output (per-frame complaints about damaged data, ...) is routed to spdlog at
// debug level; the decoder reports each problem itself, once, as a warning or an Error.
class AudioDecoder {
 public:
  // Opens the input (a path, or "-" for stdin) and selects the audio stream. Throws earmark::Error
  // naming the file and the reason (missing, empty, not media, no audio stream, ...).
  AudioDecoder(const std::string& path, const DecodeOptions& options = {});
  ~AudioDecoder();
  AudioDecoder(const AudioDecoder&) = delete;
  AudioDecoder& operator=(const AudioDecoder&) = delete;

  const AudioInfo& info() const;

  // Decodes to the end, handing blocks of exactly options.block_samples samples to the consumer
  // (the last block may be shorter). Returns the number of output samples. Can be called once.
  // Throws earmark::Error on a corrupt or truncated stream that yields no audio at all. Damage
  // after some audio was decoded is logged once as a spdlog warning: isolated undecodable packets
  // are skipped, and decoding stops at a read error or after a long run of undecodable packets;
  // what was decoded is kept.
  size_t run(AudioConsumer& consumer);

 private:
  struct Impl;
  Impl* impl_;
};

// Convenience: decode a whole file into memory (tests, short clips).
std::vector<float> decode_to_vector(const std::string& path, const DecodeOptions& options = {},
                                    AudioInfo* info = nullptr);

}  // namespace earmark
