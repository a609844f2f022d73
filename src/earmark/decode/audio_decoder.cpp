#include "earmark/decode/audio_decoder.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>

#include "earmark/common/error.h"
#include "earmark/decode/level_normaliser.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

namespace earmark {

namespace {

// ---------------------------------------------------------------------------------------------
// FFmpeg logging. By default libav* prints straight to stderr ("[mp3float @ 0x..] Header
// missing" for every damaged frame), which drowns the CLI's own messages. Route its warnings and
// errors to spdlog at debug level instead; the decoder reports problems itself, once, as a
// warning or an Error. The last error line is remembered (per thread) to explain failures.

thread_local std::string t_last_ffmpeg_error;

void ffmpeg_log_callback(void* avcl, int level, const char* fmt, va_list vl) {
  if (level > AV_LOG_WARNING) return;
  static thread_local int print_prefix = 1;
  char line[1024];
  va_list copy;
  va_copy(copy, vl);
  av_log_format_line2(avcl, level, fmt, copy, line, sizeof line, &print_prefix);
  va_end(copy);
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  if (text.empty()) return;
  // "[mp3 @ 0x55d0c0ffee00] Header missing" -> "mp3: Header missing" (addresses mean nothing
  // to a user).
  if (text[0] == '[') {
    const size_t at = text.find(" @ 0x");
    const size_t close = text.find("] ");
    if (at != std::string::npos && close != std::string::npos && at < close) {
      text = text.substr(1, at - 1) + ": " + text.substr(close + 2);
    }
  }
  if (level <= AV_LOG_ERROR) t_last_ffmpeg_error = text;
  spdlog::debug("ffmpeg: {}", text);
}

void install_ffmpeg_logging() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(ffmpeg_log_callback); });
}

std::string av_error_text(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  if (av_strerror(code, buf, sizeof buf) < 0) {
    return "FFmpeg error " + std::to_string(code);
  }
  return buf;
}

// " (reason; FFmpeg says: last log line)" for an FFmpeg return code.
std::string ffmpeg_detail(int code) {
  std::string s = " (" + av_error_text(code);
  if (!t_last_ffmpeg_error.empty()) s += "; FFmpeg: " + t_last_ffmpeg_error;
  return s + ")";
}

// ---------------------------------------------------------------------------------------------
// Standard input through a custom AVIOContext: reads fd 0 directly (no seeking), counts bytes so
// an empty stream can be reported as such, and turns EOF / a closed descriptor into FFmpeg errors
// instead of blocking or crashing.

struct StdinSource {
  int fd = STDIN_FILENO;
  int64_t bytes = 0;
  int last_errno = 0;
};

int read_stdin(void* opaque, uint8_t* buf, int size) {
  auto* src = static_cast<StdinSource*>(opaque);
  for (;;) {
    const ssize_t n = ::read(src->fd, buf, static_cast<size_t>(size));
    if (n > 0) {
      src->bytes += n;
      return static_cast<int>(n);
    }
    if (n == 0) return AVERROR_EOF;
    if (errno == EINTR) continue;
    src->last_errno = errno;
    return AVERROR(errno);
  }
}

constexpr int kStdinBufferSize = 1 << 16;

// Stop after this many consecutive undecodable packets: the rest of the stream is garbage.
constexpr int kMaxConsecutiveDecodeErrors = 200;

struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};

}  // namespace

// =============================================================================================

struct AudioDecoder::Impl {
  DecodeOptions options;
  AudioInfo info;
  std::string display;  // how the input is named in messages

  AVFormatContext* fmt = nullptr;
  AVIOContext* avio = nullptr;  // custom I/O for stdin only
  StdinSource stdin_source;
  AVCodecContext* dec = nullptr;
  AVStream* stream = nullptr;

  // Resampler state; (re)built from the first frame and whenever the frame format changes.
  SwrContext* swr = nullptr;
  int swr_in_format = -1;
  int swr_in_rate = 0;
  int swr_in_channels = 0;
  bool soxr_unavailable = false;
  std::vector<float> resampled;  // scratch for swr output

  std::unique_ptr<LevelNormaliser> normaliser;
  std::vector<float> normalised;  // scratch for normaliser output
  std::vector<float> pending;     // output not yet handed to the consumer (< block_samples)

  AudioConsumer* consumer = nullptr;
  size_t output_samples = 0;
  int64_t decoded_input_samples = 0;
  int decode_errors = 0;
  int consecutive_decode_errors = 0;
  int first_decode_error = 0;
  std::string first_decode_error_text;
  bool ran = false;

  ~Impl() {
    swr_free(&swr);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    if (avio) {
      av_freep(&avio->buffer);
      avio_context_free(&avio);
    }
  }

  [[noreturn]] void fail(const std::string& reason) const { throw Error(display + ": " + reason); }

  void open(const std::string& path);
  void select_stream();
  void open_decoder();

  void configure_resampler(const AVFrame* frame);
  void resample(const AVFrame* frame);
  void flush_resampler();
  void emit(const float* samples, size_t count);
  void deliver(bool final);

  void note_decode_error(int code);
  void receive_frames();
  void send_packet(const AVPacket* pkt);
};

void AudioDecoder::Impl::open(const std::string& path) {
  const bool is_stdin = path == "-";
  display = is_stdin ? std::string("- (standard input)") : path;
  if (path.empty()) throw Error("audio input: empty file name");

  if (!is_stdin) {
    // Check the obvious failures ourselves: FFmpeg's messages for them are vague.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      const int e = errno;
      if (e == ENOENT || e == ENOTDIR) fail("no such file");
      fail("cannot access file (" + std::generic_category().message(e) + ")");
    }
    if (S_ISDIR(st.st_mode)) fail("is a directory, not a media file");
    if (S_ISREG(st.st_mode) && st.st_size == 0) fail("empty file (0 bytes)");
    if (::access(path.c_str(), R_OK) != 0) {
      fail("cannot read file (" + std::generic_category().message(errno) + ")");
    }
  }

  fmt = avformat_alloc_context();
  if (!fmt) fail("out of memory");
  std::string url;
  if (is_stdin) {
    auto* buffer = static_cast<unsigned char*>(av_malloc(kStdinBufferSize));
    if (!buffer) fail("out of memory");
    avio = avio_alloc_context(buffer, kStdinBufferSize, 0, &stdin_source, read_stdin, nullptr,
                              nullptr);
    if (!avio) {
      av_free(buffer);
      fail("out of memory");
    }
    avio->seekable = 0;
    fmt->pb = avio;
    fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
  } else {
    // "file:" so that a name containing ':' is never taken for a protocol or URL.
    url = "file:" + path;
  }

  t_last_ffmpeg_error.clear();
  int rc = avformat_open_input(&fmt, url.c_str(), nullptr, nullptr);
  if (rc < 0) {
    fmt = nullptr;  // freed by avformat_open_input on failure
    if (is_stdin) {
      if (stdin_source.last_errno != 0 && stdin_source.bytes == 0) {
        fail("cannot read standard input (" +
             std::generic_category().message(stdin_source.last_errno) + ")");
      }
      if (stdin_source.bytes == 0) fail("empty input (nothing on standard input)");
    }
    if (rc == AVERROR(ENOENT)) fail("no such file");
    if (rc == AVERROR(EACCES)) fail("permission denied");
    if (rc == AVERROR_EOF) {
      fail("truncated or not a media file: it ends before any audio" + ffmpeg_detail(rc));
    }
    fail("not a recognised media file" + ffmpeg_detail(rc));
  }
  // A format guessed with the lowest confidence (e.g. a couple of bytes that look like an MPEG
  // audio sync word in random data) is not worth decoding into noise.
  if (fmt->probe_score > 0 && fmt->probe_score < 5) {
    fail(std::string("not a recognised media file (only a low-confidence guess of '") +
         fmt->iformat->name + "')");
  }

  t_last_ffmpeg_error.clear();
  rc = avformat_find_stream_info(fmt, nullptr);
  if (rc < 0) {
    fail("cannot read the stream information (corrupt or truncated file)" + ffmpeg_detail(rc));
  }
  info.container = fmt->iformat && fmt->iformat->name ? fmt->iformat->name : "";
}

void AudioDecoder::Impl::select_stream() {
  const int n_streams = static_cast<int>(fmt->nb_streams);
  int index = options.stream_index;
  if (index >= 0) {
    if (index >= n_streams) {
      fail("stream " + std::to_string(index) + " does not exist (the file has " +
           std::to_string(n_streams) + " stream" + (n_streams == 1 ? "" : "s") + ")");
    }
    const AVMediaType type = fmt->streams[index]->codecpar->codec_type;
    if (type != AVMEDIA_TYPE_AUDIO) {
      const char* name = av_get_media_type_string(type);
      fail("stream " + std::to_string(index) + " is not an audio stream (it is " +
           (name ? name : "unknown") + ")");
    }
  } else {
    index = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
    if (index == AVERROR_STREAM_NOT_FOUND || index < 0) {
      bool any_audio = false;
      for (int i = 0; i < n_streams; ++i) {
        any_audio |= fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO;
      }
      if (!any_audio) {
        if (info.container == "tty") fail("not a media file (looks like text)");
        fail("no audio stream (" + std::to_string(n_streams) + " stream" +
             (n_streams == 1 ? "" : "s") + ", none of them audio)");
      }
      // Audio exists but FFmpeg rejected all of it (e.g. no decoder): take the first one so the
      // decoder step below reports the precise reason.
      for (int i = 0; i < n_streams; ++i) {
        if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) {
          index = i;
          break;
        }
      }
    }
  }
  stream = fmt->streams[index];
  // Only read what we decode: the demuxer can skip video packets cheaply.
  for (int i = 0; i < n_streams; ++i) {
    if (i != index) fmt->streams[i]->discard = AVDISCARD_ALL;
  }

  const AVCodecParameters* par = stream->codecpar;
  info.stream_index = index;
  info.codec = avcodec_get_name(par->codec_id);
  info.source_sample_rate = par->sample_rate;
  info.source_channels = par->ch_layout.nb_channels;
  info.duration_s = -1.0;
  if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) {
    info.duration_s = static_cast<double>(fmt->duration) / AV_TIME_BASE;
  } else if (stream->duration != AV_NOPTS_VALUE && stream->duration > 0) {
    info.duration_s = static_cast<double>(stream->duration) * av_q2d(stream->time_base);
  }
}

void AudioDecoder::Impl::open_decoder() {
  const AVCodecParameters* par = stream->codecpar;
  const AVCodec* codec = avcodec_find_decoder(par->codec_id);
  if (!codec) fail("no decoder for audio codec '" + info.codec + "' in this FFmpeg build");
  dec = avcodec_alloc_context3(codec);
  if (!dec) fail("out of memory");
  int rc = avcodec_parameters_to_context(dec, par);
  if (rc < 0) fail("cannot set up the '" + info.codec + "' decoder" + ffmpeg_detail(rc));
  dec->pkt_timebase = stream->time_base;
  t_last_ffmpeg_error.clear();
  rc = avcodec_open2(dec, codec, nullptr);
  if (rc < 0) fail("cannot open the '" + info.codec + "' decoder" + ffmpeg_detail(rc));
  if (info.source_sample_rate <= 0) info.source_sample_rate = dec->sample_rate;
  if (info.source_channels <= 0) info.source_channels = dec->ch_layout.nb_channels;
}

// ---------------------------------------------------------------------------------------------
// Resampling and downmix.

void AudioDecoder::Impl::configure_resampler(const AVFrame* frame) {
  const int in_rate = frame->sample_rate > 0 ? frame->sample_rate : dec->sample_rate;
  int in_channels = frame->ch_layout.nb_channels;
  if (in_channels <= 0) in_channels = dec->ch_layout.nb_channels;
  if (in_rate <= 0 || in_channels <= 0) fail("decoder produced audio without rate or channels");
  if (swr && frame->format == swr_in_format && in_rate == swr_in_rate &&
      in_channels == swr_in_channels) {
    return;
  }
  if (swr) {
    // The stream changed format mid-way (e.g. concatenated files): drain the old resampler.
    flush_resampler();
    swr_free(&swr);
  }

  // The downmix is done by our own matrix, so only the channel count matters: use the default
  // layout for that count (also copes with unspecified / custom-order layouts).
  AVChannelLayout in_layout;
  av_channel_layout_default(&in_layout, in_channels);
  AVChannelLayout out_layout;
  av_channel_layout_default(&out_layout, 1);

  bool use_soxr = !soxr_unavailable;
  for (;;) {
    int rc =
        swr_alloc_set_opts2(&swr, &out_layout, AV_SAMPLE_FMT_FLT, options.sample_rate, &in_layout,
                            static_cast<AVSampleFormat>(frame->format), in_rate, 0, nullptr);
    if (rc < 0 || !swr) fail("cannot create the resampler" + ffmpeg_detail(rc));
    if (use_soxr) {
      // SoX resampler at 28-bit precision ("very high quality"): flat passband to ~0.91 of the
      // output Nyquist and a deep stopband, far beyond anything the fingerprint can see.
      av_opt_set_int(swr, "resampler", SWR_ENGINE_SOXR, 0);
      av_opt_set_double(swr, "precision", 28.0, 0);
    } else {
      // Fallback when libswresample was built without soxr: a long windowed-sinc filter.
      av_opt_set_int(swr, "filter_size", 64, 0);
      av_opt_set_int(swr, "phase_shift", 12, 0);
      av_opt_set_double(swr, "cutoff", 0.95, 0);
    }
    // Mono = plain average of all channels. swresample's own rematrix would weight channels by
    // their role (centre -3 dB, LFE dropped, ...) and normalise differently per layout; an equal
    // weight 1/N keeps the level and can never push the sum past full scale.
    std::vector<double> matrix(static_cast<size_t>(in_channels), 1.0 / in_channels);
    rc = swr_set_matrix(swr, matrix.data(), in_channels);
    if (rc < 0) fail("cannot set the downmix matrix" + ffmpeg_detail(rc));
    t_last_ffmpeg_error.clear();
    rc = swr_init(swr);
    if (rc >= 0) break;
    swr_free(&swr);
    if (use_soxr) {
      soxr_unavailable = true;
      use_soxr = false;
      spdlog::warn("libswresample has no soxr engine; using its built-in resampler instead");
      continue;
    }
    fail("cannot initialise the resampler" + ffmpeg_detail(rc));
  }
  av_channel_layout_uninit(&in_layout);
  av_channel_layout_uninit(&out_layout);
  swr_in_format = frame->format;
  swr_in_rate = in_rate;
  swr_in_channels = in_channels;
}

void AudioDecoder::Impl::resample(const AVFrame* frame) {
  configure_resampler(frame);
  // swr_get_out_samples() is an upper bound for this call; never pass a zero-sized output, so
  // the input is always consumed (whatever does not fit stays buffered inside swr).
  const int capacity = std::max(swr_get_out_samples(swr, frame->nb_samples), 1024);
  if (resampled.size() < static_cast<size_t>(capacity)) resampled.resize(capacity);
  auto* out = reinterpret_cast<uint8_t*>(resampled.data());
  const int n = swr_convert(swr, &out, capacity, const_cast<const uint8_t**>(frame->extended_data),
                            frame->nb_samples);
  if (n < 0) fail("resampling failed" + ffmpeg_detail(n));
  emit(resampled.data(), static_cast<size_t>(n));
}

void AudioDecoder::Impl::flush_resampler() {
  if (!swr) return;
  // Drain the filter's delay line: without this the last few milliseconds would be lost.
  for (int guard = 0; guard < 1000; ++guard) {
    int capacity = swr_get_out_samples(swr, 0);
    if (capacity <= 0) capacity = 4096;
    if (resampled.size() < static_cast<size_t>(capacity)) resampled.resize(capacity);
    auto* out = reinterpret_cast<uint8_t*>(resampled.data());
    const int n = swr_convert(swr, &out, capacity, nullptr, 0);
    if (n <= 0) break;
    emit(resampled.data(), static_cast<size_t>(n));
  }
}

// ---------------------------------------------------------------------------------------------
// Output: optional level normalisation, then fixed-size blocks to the consumer.

void AudioDecoder::Impl::emit(const float* samples, size_t count) {
  if (count == 0) return;
  if (normaliser) {
    normalised.clear();
    normaliser->process(samples, count, normalised);
    pending.insert(pending.end(), normalised.begin(), normalised.end());
  } else {
    pending.insert(pending.end(), samples, samples + count);
  }
  deliver(false);
}

void AudioDecoder::Impl::deliver(bool final) {
  const size_t block = options.block_samples;
  size_t offset = 0;
  while (pending.size() - offset >= block) {
    consumer->consume(pending.data() + offset, block);
    output_samples += block;
    offset += block;
  }
  if (final && pending.size() > offset) {
    consumer->consume(pending.data() + offset, pending.size() - offset);
    output_samples += pending.size() - offset;
    offset = pending.size();
  }
  if (offset > 0) pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(offset));
}

// ---------------------------------------------------------------------------------------------
// Decoding loop.

void AudioDecoder::Impl::note_decode_error(int code) {
  if (decode_errors == 0) {
    first_decode_error = code;
    first_decode_error_text = t_last_ffmpeg_error;
  }
  ++decode_errors;
  ++consecutive_decode_errors;
}

void AudioDecoder::Impl::receive_frames() {
  std::unique_ptr<AVFrame, FrameDeleter> frame(av_frame_alloc());
  if (!frame) fail("out of memory");
  for (;;) {
    const int rc = avcodec_receive_frame(dec, frame.get());
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
    if (rc < 0) {
      note_decode_error(rc);
      return;
    }
    if (frame->nb_samples > 0) {
      consecutive_decode_errors = 0;
      decoded_input_samples += frame->nb_samples;
      resample(frame.get());
    }
    av_frame_unref(frame.get());
  }
}

void AudioDecoder::Impl::send_packet(const AVPacket* pkt) {
  t_last_ffmpeg_error.clear();
  int rc = avcodec_send_packet(dec, pkt);
  if (rc == AVERROR(EAGAIN)) {
    // The decoder's output queue is full: empty it, then the packet is accepted.
    receive_frames();
    rc = avcodec_send_packet(dec, pkt);
  }
  if (rc < 0 && rc != AVERROR_EOF && rc != AVERROR(EAGAIN)) note_decode_error(rc);
  receive_frames();
}

// =============================================================================================

AudioDecoder::AudioDecoder(const std::string& path, const DecodeOptions& options)
    : impl_(new Impl) {
  std::unique_ptr<Impl> guard(impl_);
  install_ffmpeg_logging();
  Impl& d = *impl_;
  d.options = options;
  d.info.path = path;
  if (options.sample_rate < 1000 || options.sample_rate > 384000) {
    throw Error("audio decoder: output sample rate must lie in [1000, 384000] Hz, got " +
                std::to_string(options.sample_rate));
  }
  if (options.block_samples == 0) throw Error("audio decoder: block_samples must be positive");
  d.open(path);
  d.select_stream();
  d.open_decoder();
  guard.release();
}

AudioDecoder::~AudioDecoder() { delete impl_; }

const AudioInfo& AudioDecoder::info() const { return impl_->info; }

size_t AudioDecoder::run(AudioConsumer& consumer) {
  Impl& d = *impl_;
  if (d.ran) throw Error(d.display + ": the decoder has already been run");
  d.ran = true;
  d.consumer = &consumer;
  if (d.options.normalise) d.normaliser = std::make_unique<LevelNormaliser>(d.options.sample_rate);
  d.pending.reserve(d.options.block_samples * 2);

  std::unique_ptr<AVPacket, PacketDeleter> pkt(av_packet_alloc());
  if (!pkt) d.fail("out of memory");
  int read_error = 0;
  std::string read_error_text;
  bool gave_up = false;
  for (;;) {
    t_last_ffmpeg_error.clear();
    const int rc = av_read_frame(d.fmt, pkt.get());
    if (rc == AVERROR_EOF) break;
    if (rc < 0) {
      read_error = rc;
      read_error_text = t_last_ffmpeg_error;
      break;
    }
    if (pkt->stream_index == d.stream->index) d.send_packet(pkt.get());
    av_packet_unref(pkt.get());
    if (d.consecutive_decode_errors >= kMaxConsecutiveDecodeErrors) {
      gave_up = true;
      break;
    }
  }
  // Drain the decoder, the resampler and the normaliser: no lost tail.
  if (!gave_up) d.send_packet(nullptr);
  d.flush_resampler();
  if (d.normaliser) {
    d.normalised.clear();
    d.normaliser->flush(d.normalised);
    d.pending.insert(d.pending.end(), d.normalised.begin(), d.normalised.end());
  }

  auto reason = [&]() {
    if (read_error < 0) {
      std::string s = av_error_text(read_error);
      if (!read_error_text.empty()) s += "; FFmpeg: " + read_error_text;
      return "read error: " + s;
    }
    std::string s = std::to_string(d.decode_errors) + " undecodable packet" +
                    (d.decode_errors == 1 ? "" : "s") +
                    ", first: " + av_error_text(d.first_decode_error);
    if (!d.first_decode_error_text.empty()) s += "; FFmpeg: " + d.first_decode_error_text;
    return s;
  };

  if (d.decoded_input_samples == 0) {
    if (read_error < 0 || d.decode_errors > 0) {
      d.fail("corrupt or truncated: no audio could be decoded (" + reason() + ")");
    }
    d.fail("contains no audio samples");
  }
  d.deliver(true);

  const double decoded_s =
      static_cast<double>(d.output_samples) / static_cast<double>(d.options.sample_rate);
  if (read_error < 0 || d.decode_errors > 0) {
    spdlog::warn("{}: damaged {} stream, kept the {:.1f} s that decoded ({}{})", d.display,
                 d.info.codec, decoded_s, reason(), gave_up ? "; gave up on the rest" : "");
  } else if (d.info.duration_s > 0 &&
             d.fmt->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE &&
             decoded_s < 0.9 * d.info.duration_s - 1.0) {
    spdlog::warn("{}: decoded {:.1f} s but the container declares {:.1f} s (truncated file?)",
                 d.display, decoded_s, d.info.duration_s);
  }
  return d.output_samples;
}

namespace {
class VectorConsumer : public AudioConsumer {
 public:
  explicit VectorConsumer(std::vector<float>& out) : out_(out) {}
  void consume(const float* samples, size_t count) override {
    out_.insert(out_.end(), samples, samples + count);
  }

 private:
  std::vector<float>& out_;
};
}  // namespace

std::vector<float> decode_to_vector(const std::string& path, const DecodeOptions& options,
                                    AudioInfo* info) {
  AudioDecoder decoder(path, options);
  if (info) *info = decoder.info();
  std::vector<float> samples;
  if (decoder.info().duration_s > 0) {
    const double expected = decoder.info().duration_s * options.sample_rate;
    // A hint only: capped, since a damaged header can claim any duration.
    const double cap = 1200.0 * options.sample_rate;
    samples.reserve(static_cast<size_t>(std::min(expected, cap)) + options.block_samples);
  }
  VectorConsumer consumer(samples);
  decoder.run(consumer);
  return samples;
}

}  // namespace earmark
