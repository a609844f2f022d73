#include "earmark/training/codec_round_trip.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <tuple>

#include "earmark/common/error.h"

namespace earmark {

const char* codec_name(Codec codec) {
  switch (codec) {
    case Codec::kMp3:
      return "mp3";
    case Codec::kAac:
      return "aac";
    case Codec::kOpus:
      return "opus";
  }
  return "?";
}

namespace {

struct ContextFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
using ContextPtr = std::unique_ptr<AVCodecContext, ContextFree>;
using FramePtr = std::unique_ptr<AVFrame, FrameFree>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFree>;

std::string av_message(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

// Encoder and decoder names: FFmpeg's native AAC both ways; LAME and FFmpeg's mp3 decoder; libopus
// both ways (FFmpeg's native Opus decoder only outputs 48 kHz).
const char* encoder_name(Codec c) {
  return c == Codec::kMp3 ? "libmp3lame" : c == Codec::kAac ? "aac" : "libopus";
}
const char* decoder_name(Codec c) {
  return c == Codec::kMp3 ? "mp3float" : c == Codec::kAac ? "aac" : "libopus";
}

AVSampleFormat pick_format(const AVCodec* codec) {
  const AVSampleFormat preferred[] = {AV_SAMPLE_FMT_FLTP, AV_SAMPLE_FMT_FLT, AV_SAMPLE_FMT_S16,
                                      AV_SAMPLE_FMT_S16P};
  if (codec->sample_fmts == nullptr) return AV_SAMPLE_FMT_FLT;
  for (AVSampleFormat want : preferred)
    for (const AVSampleFormat* f = codec->sample_fmts; *f != AV_SAMPLE_FMT_NONE; ++f)
      if (*f == want) return want;
  return codec->sample_fmts[0];
}

void append_decoded(const AVFrame* frame, std::vector<float>& out) {
  const int n = frame->nb_samples;
  const auto fmt = AVSampleFormat(frame->format);
  // Mono in, mono out: only the first channel is read.
  switch (fmt) {
    case AV_SAMPLE_FMT_FLTP:
    case AV_SAMPLE_FMT_FLT: {
      const float* p = reinterpret_cast<const float*>(frame->data[0]);
      out.insert(out.end(), p,
                 p + (fmt == AV_SAMPLE_FMT_FLT ? n * frame->ch_layout.nb_channels : n));
      if (fmt == AV_SAMPLE_FMT_FLT && frame->ch_layout.nb_channels > 1)
        throw Error("codec round trip: the decoder returned more than one channel");
      break;
    }
    case AV_SAMPLE_FMT_S16P:
    case AV_SAMPLE_FMT_S16: {
      const int16_t* p = reinterpret_cast<const int16_t*>(frame->data[0]);
      for (int i = 0; i < n; ++i) out.push_back(p[i] / 32768.0f);
      break;
    }
    default:
      throw Error(std::string("codec round trip: unexpected decoded sample format ") +
                  av_get_sample_fmt_name(fmt));
  }
}

// libopus decodes at 48 kHz whatever it is asked: back to the input's rate.
std::vector<float> resample(const std::vector<float>& in, int from, int to) {
  AVChannelLayout mono;
  av_channel_layout_default(&mono, 1);
  SwrContext* swr = nullptr;
  if (swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_FLT, to, &mono, AV_SAMPLE_FMT_FLT, from, 0,
                          nullptr) < 0 ||
      swr_init(swr) < 0) {
    swr_free(&swr);
    throw Error("codec round trip: cannot resample " + std::to_string(from) + " Hz");
  }
  std::vector<float> out(size_t(int64_t(in.size()) * to / from) + 256);
  const uint8_t* src[1] = {reinterpret_cast<const uint8_t*>(in.data())};
  uint8_t* dst[1] = {reinterpret_cast<uint8_t*>(out.data())};
  int got = swr_convert(swr, dst, int(out.size()), src, int(in.size()));
  int total = std::max(got, 0);
  if (got >= 0) {
    dst[0] = reinterpret_cast<uint8_t*>(out.data() + total);
    got = swr_convert(swr, dst, int(out.size()) - total, nullptr, 0);
    total += std::max(got, 0);
  }
  swr_free(&swr);
  out.resize(size_t(total));
  return out;
}

// The raw round trip, delay included.
std::vector<float> encode_decode(const std::vector<float>& audio, Codec codec, int bitrate,
                                 int rate) {
  const AVCodec* enc = avcodec_find_encoder_by_name(encoder_name(codec));
  const AVCodec* dec = avcodec_find_decoder_by_name(decoder_name(codec));
  if (enc == nullptr || dec == nullptr)
    throw Error(std::string("codec round trip: this FFmpeg has no ") + codec_name(codec) +
                " encoder/decoder");
  ContextPtr ec(avcodec_alloc_context3(enc));
  ec->sample_rate = rate;
  ec->bit_rate = bitrate;
  ec->sample_fmt = pick_format(enc);
  av_channel_layout_default(&ec->ch_layout, 1);
  ec->time_base = AVRational{1, rate};
  int err = avcodec_open2(ec.get(), enc, nullptr);
  if (err < 0)
    throw Error(std::string("codec round trip: cannot open the ") + codec_name(codec) +
                " encoder at " + std::to_string(bitrate) + " bit/s, " + std::to_string(rate) +
                " Hz: " + av_message(err));
  ContextPtr dc(avcodec_alloc_context3(dec));
  dc->sample_rate = rate;
  av_channel_layout_default(&dc->ch_layout, 1);
  if (ec->extradata_size > 0) {
    dc->extradata =
        static_cast<uint8_t*>(av_mallocz(ec->extradata_size + AV_INPUT_BUFFER_PADDING_SIZE));
    std::memcpy(dc->extradata, ec->extradata, ec->extradata_size);
    dc->extradata_size = ec->extradata_size;
  }
  err = avcodec_open2(dc.get(), dec, nullptr);
  if (err < 0)
    throw Error(std::string("codec round trip: cannot open the ") + codec_name(codec) +
                " decoder: " + av_message(err));

  std::vector<float> out;
  out.reserve(audio.size() + 4096);
  FramePtr frame(av_frame_alloc()), decoded(av_frame_alloc());
  PacketPtr packet(av_packet_alloc());
  auto drain_decoder = [&]() {
    while ((err = avcodec_receive_frame(dc.get(), decoded.get())) >= 0) {
      append_decoded(decoded.get(), out);
      av_frame_unref(decoded.get());
    }
  };
  auto drain_encoder = [&]() {
    while ((err = avcodec_receive_packet(ec.get(), packet.get())) >= 0) {
      // A damaged packet is the codec's own business: decoding goes on, as a player's would.
      avcodec_send_packet(dc.get(), packet.get());
      av_packet_unref(packet.get());
      drain_decoder();
    }
  };
  const int frame_size = ec->frame_size > 0 ? ec->frame_size : 1024;
  const bool variable = enc->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE;
  int64_t pts = 0;
  for (size_t pos = 0; pos < audio.size(); pos += frame_size) {
    const int n = int(std::min<size_t>(frame_size, audio.size() - pos));
    frame->nb_samples = variable || ec->frame_size == 0 ? n : frame_size;
    frame->format = ec->sample_fmt;
    frame->sample_rate = rate;
    av_channel_layout_copy(&frame->ch_layout, &ec->ch_layout);
    if ((err = av_frame_get_buffer(frame.get(), 0)) < 0)
      throw Error("codec round trip: out of memory");
    for (int i = 0; i < frame->nb_samples; ++i) {
      const float x = i < n ? std::clamp(audio[pos + i], -1.0f, 1.0f) : 0.0f;
      if (ec->sample_fmt == AV_SAMPLE_FMT_FLTP || ec->sample_fmt == AV_SAMPLE_FMT_FLT)
        reinterpret_cast<float*>(frame->data[0])[i] = x;
      else
        reinterpret_cast<int16_t*>(frame->data[0])[i] = int16_t(std::lrint(x * 32767.0f));
    }
    frame->pts = pts;
    pts += frame->nb_samples;
    if ((err = avcodec_send_frame(ec.get(), frame.get())) < 0)
      throw Error(std::string("codec round trip: ") + codec_name(codec) +
                  " encoding failed: " + av_message(err));
    av_frame_unref(frame.get());
    drain_encoder();
  }
  avcodec_send_frame(ec.get(), nullptr);
  drain_encoder();
  avcodec_send_packet(dc.get(), nullptr);
  drain_decoder();
  if (dc->sample_rate != rate) out = resample(out, dc->sample_rate, rate);
  return out;
}

// Delay of a round trip in samples: the lag that best aligns a decoded noise burst with the
// original, found once per setting.
size_t measured_delay(Codec codec, int bitrate, int rate) {
  static std::mutex mutex;
  static std::map<std::tuple<int, int, int>, size_t> cache;
  const auto key = std::make_tuple(int(codec), bitrate, rate);
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  // Band-limited noise bursts: broadband enough for every codec, and without periodicity that
  // would let a wrong lag fit as well.
  std::vector<float> probe(rate, 0.0f);
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 0.1f);
  float lp = 0;
  for (size_t i = rate / 10; i < probe.size() * 9 / 10; ++i) {
    lp = 0.7f * lp + 0.3f * noise(rng);
    probe[i] = ((i / 800) % 2 == 0) ? lp : 0.2f * lp;
  }
  const std::vector<float> got = encode_decode(probe, codec, bitrate, rate);
  const size_t max_lag =
      std::min<size_t>(size_t(rate) / 5, got.size() > probe.size() ? got.size() : 0);
  size_t best = 0;
  double best_score = -1e300;
  for (size_t lag = 0; lag <= max_lag; ++lag) {
    double dot = 0;
    for (size_t i = 0; i + lag < got.size() && i < probe.size(); ++i)
      dot += double(probe[i]) * got[i + lag];
    if (dot > best_score) {
      best_score = dot;
      best = lag;
    }
  }
  std::lock_guard<std::mutex> lock(mutex);
  cache[key] = best;
  return best;
}

}  // namespace

std::vector<float> codec_round_trip(const std::vector<float>& audio, Codec codec, int bitrate,
                                    int rate) {
  if (bitrate < 6000 || bitrate > 512000)
    throw Error("codec round trip: bitrate must be in [6000, 512000] bit/s");
  if (rate < 8000 || rate > 48000) throw Error("codec round trip: rate must be in [8, 48] kHz");
  const size_t delay = measured_delay(codec, bitrate, rate);
  const std::vector<float> got = encode_decode(audio, codec, bitrate, rate);
  std::vector<float> out(audio.size(), 0.0f);
  for (size_t i = 0; i < out.size() && i + delay < got.size(); ++i) out[i] = got[i + delay];
  return out;
}

}  // namespace earmark
