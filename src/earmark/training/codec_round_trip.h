#pragma once
// A lossy codec round trip through FFmpeg's own encoders and decoders (libavcodec, no external
// program): the artefacts of a low-bitrate mp3, AAC or Opus stream, on training audio.
#include <string>
#include <vector>

namespace earmark {

enum class Codec { kMp3, kAac, kOpus };

// "mp3", "aac", "opus".
const char* codec_name(Codec codec);

// Encodes mono `audio` at `rate` Hz with the codec at `bitrate` bit/s and decodes it again. The
// result has the input's length and alignment: the codec's delay (encoder priming plus decoder
// delay, measured once per codec, bitrate and rate on a probe signal) is removed. Throws
// earmark::Error if FFmpeg lacks the codec or refuses the settings.
std::vector<float> codec_round_trip(const std::vector<float>& audio, Codec codec, int bitrate,
                                    int rate = 16000);

}  // namespace earmark
