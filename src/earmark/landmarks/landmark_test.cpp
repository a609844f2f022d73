// Landmark stage: determinism, robustness of the triplet hashes to noise, the query-side
// tolerance of TripletQuantizer, and LandmarkParams validation / serialisation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "earmark/common/error.h"
#include "earmark/common/test_audio_test_util.h"
#include "earmark/decode/audio_decoder.h"
#include "earmark/landmarks/landmark_extractor.h"
#include "earmark/landmarks/landmark_params.h"
#include "earmark/landmarks/triplet.h"

namespace earmark {
namespace {

using testutil::add_noise;
using testutil::ffmpeg_convert;
using testutil::have_tool;
using testutil::Rng;
using testutil::synth_music;
using testutil::TempDir;
using testutil::write_wav;

std::vector<TripletDescriptor> descriptors(const LandmarkParams& p, const std::vector<float>& x,
                                           size_t block) {
  std::vector<TripletDescriptor> out;
  LandmarkExtractor ex(p, [&](const TripletDescriptor& d) { out.push_back(d); });
  for (size_t i = 0; i < x.size(); i += block)
    ex.consume(x.data() + i, std::min(block, x.size() - i));
  ex.finish();
  return out;
}

bool same(const TripletDescriptor& a, const TripletDescriptor& b) {
  return a.frame == b.frame && a.pitch == b.pitch && a.ratio == b.ratio && a.d1 == b.d1 &&
         a.d2 == b.d2 && a.span == b.span;
}

TEST(LandmarkExtraction, IsDeterministic) {
  const LandmarkParams p;
  const auto x = synth_music(1, 20.0);
  const auto a = extract_landmarks(p, x.data(), x.size());
  const auto b = extract_landmarks(p, x.data(), x.size());
  ASSERT_GT(a.size(), 1000u) << "synthetic music should give plenty of landmarks";
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].key, b[i].key) << i;
    ASSERT_EQ(a[i].frame, b[i].frame) << i;
    ASSERT_EQ(a[i].pitch_code, b[i].pitch_code) << i;
  }
  // Anchors come in non-decreasing frame order (the matcher relies on it) and lie in the audio.
  const uint32_t frames = uint32_t(x.size() / p.hop + 1);
  for (size_t i = 1; i < a.size(); ++i) ASSERT_LE(a[i - 1].frame, a[i].frame) << i;
  EXPECT_LT(a.back().frame, frames);
}

TEST(LandmarkExtraction, DoesNotDependOnBlockSize) {
  const LandmarkParams p = LandmarkParams().for_query();
  const auto x = synth_music(2, 12.0);
  const auto whole = descriptors(p, x, x.size());
  ASSERT_FALSE(whole.empty());
  for (size_t block : {size_t(1), size_t(159), size_t(160), size_t(4096), size_t(8192)}) {
    const auto parts = descriptors(p, x, block);
    ASSERT_EQ(parts.size(), whole.size()) << "block " << block;
    for (size_t i = 0; i < whole.size(); ++i)
      ASSERT_TRUE(same(parts[i], whole[i])) << "block " << block << ", triplet " << i;
  }
}

TEST(LandmarkExtraction, DensityFollowsParameters) {
  const LandmarkParams p;
  const auto x = synth_music(3, 20.0);
  size_t ref_peaks = 0, query_peaks = 0;
  {
    LandmarkExtractor ex(p, [](const TripletDescriptor&) {});
    ex.consume(x.data(), x.size());
    ex.finish();
    ref_peaks = ex.num_peaks();
    EXPECT_NEAR(ex.num_frames(), int(x.size() / p.hop), 8);
  }
  {
    LandmarkExtractor ex(p.for_query(), [](const TripletDescriptor&) {});
    ex.consume(x.data(), x.size());
    ex.finish();
    query_peaks = ex.num_peaks();
  }
  // The density cap holds (per second), and queries are extracted denser.
  EXPECT_LE(ref_peaks, size_t(p.peaks_per_second * 21));
  EXPECT_GT(query_peaks, ref_peaks);
}

// The layers share one spectrogram and one peak picker; each must still get exactly the
// triplets a standalone extractor at its own density gives, interleaved in any order.
TEST(LandmarkExtraction, LayersGetWhatTheirOwnExtractorWouldGive) {
  const LandmarkParams p;
  const auto layers = p.query_layers();
  ASSERT_EQ(layers.size(), 2u);
  const auto x = synth_music(4, 15.0);
  auto key = [](const TripletDescriptor& d) {
    return std::make_tuple(d.frame, d.pitch, d.ratio, d.d1, d.d2, d.span);
  };
  std::multiset<std::tuple<int32_t, float, float, float, float, float>> layered, separate;
  LayeredExtractor ex(layers, [&](const TripletDescriptor& d) { layered.insert(key(d)); });
  ex.consume(x.data(), x.size());
  ex.finish();
  size_t sizes[2] = {};
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto own = descriptors(layers[i], x, 4096);
    sizes[i] = own.size();
    for (const auto& d : own) separate.insert(key(d));
  }
  EXPECT_GT(sizes[0], sizes[1]) << "the sparse layer keeps fewer peaks";
  EXPECT_GT(sizes[1], 100u);
  EXPECT_TRUE(layered == separate);

  LandmarkParams other = layers[1];
  other.peak_freq_radius += 1;
  EXPECT_THROW(LayeredExtractor({layers[0], other}, [](const TripletDescriptor&) {}), Error);
  LandmarkParams unfloored = layers[1];
  unfloored.level_floor = 0.0f;
  EXPECT_THROW(LayeredExtractor({layers[0], unfloored}, [](const TripletDescriptor&) {}), Error);
}

// Share of the reference's peaks that the query has within a frame and half a semitone.
double peaks_kept(const std::vector<SpectralPeak>& ref, const std::vector<SpectralPeak>& query) {
  size_t kept = 0;
  for (const SpectralPeak& r : ref)
    for (const SpectralPeak& q : query)
      if (std::fabs(q.time - r.time) <= 1.5f && std::fabs(q.pitch - r.pitch) <= 0.5f) {
        ++kept;
        break;
      }
  return ref.empty() ? 0.0 : double(kept) / ref.size();
}

// An mp3 at 32 kbit/s leaves islands of spectrum between zeroed bands; measured against a band
// mean that the holes drag down, the islands outrank the music's own peaks and take the query's
// peak budget. The level floor keeps the music's peaks.
TEST(LandmarkExtraction, LowBitrateMp3KeepsTheMusicsPeaks) {
  if (!have_tool("ffmpeg")) GTEST_SKIP() << "ffmpeg not installed";
  TempDir dir;
  // Real music has a noisy top octave (cymbals, breath, reverb): the encoder starves it first.
  const auto x = add_noise(synth_music(5, 12.0), 12.0, 6);
  write_wav(dir.path() + "/ref.wav", x);
  ASSERT_TRUE(ffmpeg_convert(dir.path() + "/ref.wav", dir.path() + "/q.mp3",
                             "-ar 44100 -c:a libmp3lame -b:a 32k"));
  DecodeOptions options;
  options.normalise = false;
  const auto q = decode_to_vector(dir.path() + "/q.mp3", options);
  double kept[2];
  for (int floored = 0; floored < 2; ++floored) {
    LandmarkParams p;
    if (!floored) p.level_floor = 0.0f;
    const LandmarkParams query = p.for_query();
    kept[floored] =
        peaks_kept(extract_peaks(p, x.data(), x.size()), extract_peaks(query, q.data(), q.size()));
  }
  std::printf("peaks kept: %.3f without the floor, %.3f with it\n", kept[0], kept[1]);
  EXPECT_GT(kept[1], 0.8);
  EXPECT_GT(kept[1], kept[0] + 0.1);
}

TEST(LandmarkExtraction, SilenceGivesNoLandmarks) {
  const LandmarkParams p;
  std::vector<float> x(16000 * 5, 0.0f);
  EXPECT_TRUE(extract_landmarks(p, x.data(), x.size()).empty());
}

TEST(LandmarkExtraction, DescriptorsAreWithinTheirDocumentedRanges) {
  const LandmarkParams p = LandmarkParams().for_query();
  const auto x = synth_music(4, 15.0);
  for (const TripletDescriptor& d : descriptors(p, x, 4096)) {
    ASSERT_GT(d.ratio, 0.0f);
    ASSERT_LE(d.ratio, 1.0f);
    ASSERT_LE(std::fabs(d.d1), p.max_df + 1e-3f);
    ASSERT_LE(std::fabs(d.d2), p.max_df + 1e-3f);
    ASSERT_GE(d.span, p.min_dt - 1.0f);
    ASSERT_LE(d.span, p.max_dt + 1.0f);
  }
}

// Share of `ref` whose (key, anchor frame within one frame) is in `have`.
double share_present(const std::vector<Landmark>& ref,
                     const std::set<std::pair<uint32_t, uint32_t>>& have) {
  size_t found = 0;
  for (const Landmark& l : ref) {
    for (int df = -1; df <= 1; ++df) {
      if (have.count({l.key, uint32_t(int64_t(l.frame) + df)})) {
        ++found;
        break;
      }
    }
  }
  return ref.empty() ? 0.0 : double(found) / ref.size();
}

// Share of the reference's landmarks (key, anchor frame within one frame) that the noisy
// recording reproduces.
double reproduced_share(const std::vector<Landmark>& ref, const std::vector<Landmark>& noisy) {
  std::set<std::pair<uint32_t, uint32_t>> have;
  for (const Landmark& l : noisy) have.insert({l.key, l.frame});
  return share_present(ref, have);
}

// Same, but a reference landmark counts as reproduced when a query triplet with its anchor
// within one frame probes its key: what the matcher can actually find.
double probed_share(const LandmarkParams& p, const std::vector<Landmark>& ref,
                    const std::vector<TripletDescriptor>& query) {
  const TripletQuantizer q(p);
  std::set<std::pair<uint32_t, uint32_t>> have;
  std::vector<uint32_t> keys;
  for (const TripletDescriptor& d : query) {
    keys.clear();
    q.probe_keys(d, keys);
    for (uint32_t k : keys) have.insert({k, uint32_t(d.frame)});
  }
  return share_present(ref, have);
}

// A reference's triplet keys are still there (see the bound below), at the same anchor
// frame, when the audio carries white noise at 20 dB SNR. Measured the way a scan sees it: the
// noisy audio extracted at query density, a reference landmark found when a query triplet at
// its anchor frame (+-1) probes its key.
TEST(LandmarkExtraction, KeysSurviveWhiteNoiseAt20dB) {
  const LandmarkParams p;
  const LandmarkParams q = p.for_query();
  double worst = 1.0;
  for (uint64_t seed : {11u, 12u, 13u}) {
    const auto x = synth_music(seed, 20.0);
    const auto noisy = add_noise(x, 20.0, seed + 100);
    const auto ref = extract_landmarks(p, x.data(), x.size());
    const auto exact = reproduced_share(ref, extract_landmarks(p, noisy.data(), noisy.size()));
    const auto query = descriptors(q, noisy, 8192);
    const double probed = probed_share(p, ref, query);
    std::printf(
        "[ info ] seed %u: %zu reference landmarks; under white noise at 20 dB SNR "
        "%.1f %% keep their exact key (reference density), %.1f %% are probed by the "
        "query\n",
        unsigned(seed), ref.size(), 100 * exact, 100 * probed);
    worst = std::min(worst, probed);
  }
  // Measured on this design: 22-32 % under white noise at 20 dB SNR (query fanout 5 reaches
  // fewer targets than the reference; see the issue note). The bound guards against regressions.
  EXPECT_GE(worst, 0.15) << "share of reference triplet keys reproduced at 20 dB SNR";
}

// Without noise, a query extraction of the same audio reproduces (probes) essentially all of
// the reference's landmarks: the denser query extraction is a superset.
TEST(LandmarkExtraction, CleanQueryProbesAlmostAllReferenceKeys) {
  const LandmarkParams p;
  const auto x = synth_music(14, 20.0);
  const auto ref = extract_landmarks(p, x.data(), x.size());
  const double share = probed_share(p, ref, descriptors(p.for_query(), x, 4096));
  std::printf("[ info ] clean: %.1f %% of reference landmarks probed by the query\n", 100 * share);
  EXPECT_GE(share, 0.45);
}

TEST(LandmarkExtraction, UnrelatedTracksShareFewLandmarks) {
  const LandmarkParams p;
  const auto a = synth_music(21, 20.0);
  const auto b = synth_music(22, 20.0);
  const auto la = extract_landmarks(p, a.data(), a.size());
  const auto lb = extract_landmarks(p, b.data(), b.size());
  EXPECT_LT(reproduced_share(la, lb), 0.02);
}

// ------------------------------------------------------------------------------------------
// TripletQuantizer

TripletDescriptor random_descriptor(Rng& rng, const LandmarkParams& p) {
  TripletDescriptor d;
  d.frame = rng.below(100000);
  const float min_pitch = float(69.0 + 12.0 * std::log2(p.min_hz / 440.0));
  const float max_pitch = float(69.0 + 12.0 * std::log2(p.max_hz / 440.0));
  d.pitch = float(rng.uniform(min_pitch, max_pitch));
  d.span = float(rng.uniform(p.min_dt + 0.5, p.max_dt));
  d.ratio = float(rng.uniform(0.02, 1.0));
  d.d1 = float(rng.uniform(-p.max_df, p.max_df));
  d.d2 = float(rng.uniform(-p.max_df, p.max_df));
  return d;
}

bool contains(const std::vector<uint32_t>& keys, uint32_t k) {
  return std::find(keys.begin(), keys.end(), k) != keys.end();
}

TEST(TripletQuantizer, ProbeKeysIncludeOwnKey) {
  const LandmarkParams p;
  const TripletQuantizer q(p);
  Rng rng(1);
  std::vector<uint32_t> keys;
  for (int i = 0; i < 20000; ++i) {
    const TripletDescriptor d = random_descriptor(rng, p);
    keys.clear();
    q.probe_keys(d, keys);
    ASSERT_TRUE(contains(keys, q.key(d))) << "pitch " << d.pitch << " span " << d.span << " ratio "
                                          << d.ratio << " d1 " << d.d1 << " d2 " << d.d2;
  }
}

TEST(TripletQuantizer, ProbeKeysCoverToleratedTempoAndPitchChange) {
  const LandmarkParams p;
  const TripletQuantizer q(p);
  Rng rng(2);
  std::vector<uint32_t> keys;
  size_t total_probes = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const TripletDescriptor d = random_descriptor(rng, p);
    keys.clear();
    q.probe_keys(d, keys);
    total_probes += keys.size();
    // The reference this query triplet came from: its span and pitch may differ by the tempo
    // and pitch change; d1, d2 and ratio do not.
    for (float span_factor : {1.05f, 1.0f / 1.05f}) {
      for (float semitones : {2.0f, -2.0f}) {
        TripletDescriptor r = d;
        r.span = d.span * span_factor;
        r.pitch = d.pitch + semitones;
        ASSERT_TRUE(contains(keys, q.key(r)))
            << "span x" << span_factor << ", pitch " << semitones << " st: pitch " << d.pitch
            << " span " << d.span << " ratio " << d.ratio << " d1 " << d.d1 << " d2 " << d.d2;
      }
    }
  }
  std::printf("[ info ] mean probe keys per query triplet: %.1f\n", double(total_probes) / n);
}

TEST(TripletQuantizer, KeyDependsOnPitchIntervalsAndRatio) {
  const LandmarkParams p;
  const TripletQuantizer q(p);
  Rng rng(3);
  int differ_d1 = 0, differ_ratio = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    TripletDescriptor d = random_descriptor(rng, p);
    d.d1 = std::clamp(d.d1, -p.max_df + 2, p.max_df - 2);
    d.ratio = std::clamp(d.ratio, 0.2f, 0.8f);
    TripletDescriptor e = d;
    e.d1 += 1.5f;  // more than two df cells away
    differ_d1 += q.key(d) != q.key(e);
    e = d;
    e.ratio += 0.2f;  // more than one ratio cell away
    differ_ratio += q.key(d) != q.key(e);
  }
  EXPECT_EQ(differ_d1, n);
  EXPECT_EQ(differ_ratio, n);
}

TEST(TripletQuantizer, PitchCodesGiveThePitchShift) {
  for (float pitch : {40.0f, 60.25f, 63.9f, 64.0f, 100.0f}) {
    for (float shift : {-2.0f, -0.5f, 0.0f, 0.25f, 2.0f, 2.25f}) {
      const uint8_t qc = TripletQuantizer::pitch_code(pitch + shift);
      const uint8_t rc = TripletQuantizer::pitch_code(pitch);
      EXPECT_NEAR(TripletQuantizer::pitch_shift(qc, rc), shift, 0.26f)
          << "pitch " << pitch << " shift " << shift;
    }
  }
}

// ------------------------------------------------------------------------------------------
// LandmarkParams

TEST(LandmarkParams, DefaultsAreValid) {
  EXPECT_NO_THROW(LandmarkParams().validate());
  EXPECT_NO_THROW(LandmarkParams().for_query().validate());
  EXPECT_NO_THROW(LandmarkParams().for_reference(5.0, false).validate());
}

TEST(LandmarkParams, ValidateRejectsAbsurdValues) {
  struct Case {
    const char* what;
    void (*change)(LandmarkParams&);
  };
  const Case cases[] = {
      {"fft_size 1000", [](LandmarkParams& p) { p.fft_size = 1000; }},
      {"fft_size 0", [](LandmarkParams& p) { p.fft_size = 0; }},
      {"fft_size 32", [](LandmarkParams& p) { p.fft_size = 32; }},
      {"fft_size 65536", [](LandmarkParams& p) { p.fft_size = 65536; }},
      {"hop 0", [](LandmarkParams& p) { p.hop = 0; }},
      {"hop -5", [](LandmarkParams& p) { p.hop = -5; }},
      {"hop > fft_size", [](LandmarkParams& p) { p.hop = 2048; }},
      {"sample_rate 0", [](LandmarkParams& p) { p.sample_rate = 0; }},
      {"min_hz 0", [](LandmarkParams& p) { p.min_hz = 0; }},
      {"min_hz >= max_hz", [](LandmarkParams& p) { p.min_hz = 8000, p.max_hz = 7000; }},
      {"max_hz above Nyquist", [](LandmarkParams& p) { p.max_hz = 9000; }},
      {"max_dt == min_dt", [](LandmarkParams& p) { p.max_dt = p.min_dt; }},
      {"max_dt < min_dt", [](LandmarkParams& p) { p.min_dt = 10, p.max_dt = 5; }},
      {"min_dt 0", [](LandmarkParams& p) { p.min_dt = 0; }},
      {"max_dt 5000", [](LandmarkParams& p) { p.max_dt = 5000; }},
      {"max_df 0", [](LandmarkParams& p) { p.max_df = 0; }},
      {"max_df 100", [](LandmarkParams& p) { p.max_df = 100; }},
      {"ratio_levels 1", [](LandmarkParams& p) { p.ratio_levels = 1; }},
      {"ratio_levels 9", [](LandmarkParams& p) { p.ratio_levels = 9; }},
      {"df_step tiny", [](LandmarkParams& p) { p.df_step = 0.01f; }},
      {"span_step tiny", [](LandmarkParams& p) { p.span_step = 0.001f; }},
      {"band_width 0", [](LandmarkParams& p) { p.band_width = 0; }},
      {"fanout 1", [](LandmarkParams& p) { p.fanout = 1; }},
      {"fanout 17", [](LandmarkParams& p) { p.fanout = 17; }},
      {"query_fanout 0", [](LandmarkParams& p) { p.query_fanout = 0; }},
      {"peaks_per_second 0", [](LandmarkParams& p) { p.peaks_per_second = 0; }},
      {"query_peaks_per_second 0", [](LandmarkParams& p) { p.query_peaks_per_second = 0; }},
      {"peak_time_radius 0", [](LandmarkParams& p) { p.peak_time_radius = 0; }},
      {"peak_freq_radius 0", [](LandmarkParams& p) { p.peak_freq_radius = 0; }},
      {"probe_margin 0.5", [](LandmarkParams& p) { p.probe_margin = 0.5f; }},
      {"max_tempo_change -0.1", [](LandmarkParams& p) { p.max_tempo_change = -0.1f; }},
      {"max_pitch_shift 13", [](LandmarkParams& p) { p.max_pitch_shift = 13; }},
      {"max_df NaN", [](LandmarkParams& p) { p.max_df = std::nanf(""); }},
      {"short_seconds -1", [](LandmarkParams& p) { p.short_seconds = -1; }},
      {"level_floor -1", [](LandmarkParams& p) { p.level_floor = -1; }},
      {"level_floor NaN", [](LandmarkParams& p) { p.level_floor = std::nanf(""); }},
  };
  for (const Case& c : cases) {
    LandmarkParams p;
    c.change(p);
    EXPECT_THROW(p.validate(), Error) << c.what;
  }
  // The message says what is wrong.
  LandmarkParams p;
  p.fft_size = 1000;
  try {
    p.validate();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fft_size"), std::string::npos) << e.what();
  }
}

TEST(LandmarkParams, JsonRoundTrip) {
  LandmarkParams p;
  p.fft_size = 2048;
  p.hop = 256;
  p.min_hz = 200.5f;
  p.max_hz = 6000.0f;
  p.peaks_per_second = 30;
  p.min_prominence = 0.75f;
  p.level_floor = 2.5f;
  p.fanout = 5;
  p.max_dt = 80;
  p.max_df = 12.0f;
  p.ratio_levels = 6;
  p.df_step = 0.5f;
  p.span_step = 0.12f;
  p.band_width = 3.0f;
  p.query_peaks_per_second = 50;
  p.query_fanout = 6;
  p.short_seconds = 10.0;
  p.max_tempo_change = 0.08f;
  p.max_pitch_shift = 3.0f;
  p.probe_margin = 0.2f;
  ASSERT_NO_THROW(p.validate());
  const LandmarkParams r = LandmarkParams::from_json(p.to_json());
  EXPECT_EQ(r.to_json(), p.to_json());
  EXPECT_EQ(r.fft_size, 2048);
  EXPECT_EQ(r.hop, 256);
  EXPECT_FLOAT_EQ(r.min_hz, 200.5f);
  EXPECT_EQ(r.ratio_levels, 6);
  EXPECT_EQ(r.query_fanout, 6);
  EXPECT_DOUBLE_EQ(r.short_seconds, 10.0);
  EXPECT_FLOAT_EQ(r.probe_margin, 0.2f);
  EXPECT_FLOAT_EQ(r.span_step, 0.12f);
  EXPECT_FLOAT_EQ(r.level_floor, 2.5f);
  // Through text too, as stored in the catalogue.
  const LandmarkParams t = LandmarkParams::from_json(nlohmann::json::parse(p.to_json().dump()));
  EXPECT_EQ(t.to_json(), p.to_json());
  EXPECT_EQ(t.hash_identity(), p.hash_identity());
}

TEST(LandmarkParams, FromJsonKeepsDefaultsAndValidates) {
  const LandmarkParams d;
  const LandmarkParams partial = LandmarkParams::from_json({{"hop", 128}});
  EXPECT_EQ(partial.hop, 128);
  EXPECT_EQ(partial.fft_size, d.fft_size);
  EXPECT_EQ(partial.max_dt, d.max_dt);
  // Settings stored before the level floor existed were extracted without it.
  EXPECT_GT(d.level_floor, 0.0f);
  EXPECT_EQ(partial.level_floor, 0.0f);
  EXPECT_THROW(LandmarkParams::from_json({{"fft_size", 1000}}), Error);
  EXPECT_THROW(LandmarkParams::from_json({{"hop", 0}}), Error);
}

TEST(LandmarkParams, HashIdentityOnlyCoversWhatAHashMeans) {
  const LandmarkParams d;
  LandmarkParams density = d;
  density.peaks_per_second = 10;
  density.fanout = 8;
  density.query_peaks_per_second = 80;
  density.max_tempo_change = 0.1f;
  EXPECT_EQ(density.hash_identity(), d.hash_identity());
  LandmarkParams geometry = d;
  geometry.fft_size = 2048;
  EXPECT_NE(geometry.hash_identity(), d.hash_identity());
  LandmarkParams quant = d;
  quant.df_step = 0.5f;
  EXPECT_NE(quant.hash_identity(), d.hash_identity());
}

TEST(LandmarkParams, QueryAndShortReferenceDensity) {
  const LandmarkParams d;
  const LandmarkParams q = d.for_query();
  EXPECT_EQ(q.peaks_per_second, d.query_peaks_per_second);
  EXPECT_EQ(q.fanout, d.query_fanout);
  EXPECT_EQ(q.hash_identity(), d.hash_identity());
  const LandmarkParams shorter = d.for_reference(d.short_seconds / 2, false);
  EXPECT_EQ(shorter.peaks_per_second, d.short_peaks_per_second);
  const LandmarkParams logo = d.for_reference(600, true);
  EXPECT_EQ(logo.fanout, d.short_fanout);
  const LandmarkParams song = d.for_reference(200, false);
  EXPECT_EQ(song.peaks_per_second, d.peaks_per_second);
  EXPECT_EQ(song.fanout, d.fanout);
  // Unknown duration (a stream): normal density.
  EXPECT_EQ(d.for_reference(-1, false).peaks_per_second, d.peaks_per_second);
}

TEST(LandmarkParams, SparseLayerForQueriesAndShortReferences) {
  LandmarkParams d;
  ASSERT_GT(d.sparse_peaks_per_second, 0);
  auto q = d.query_layers();
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0].peaks_per_second, d.query_peaks_per_second);
  EXPECT_EQ(q[1].peaks_per_second, d.sparse_peaks_per_second);
  EXPECT_EQ(q[1].fanout, d.sparse_fanout);
  EXPECT_EQ(d.reference_layers(200.0, false).size(), 1u);
  EXPECT_EQ(d.reference_layers(200.0, true).size(), 2u);
  EXPECT_EQ(d.reference_layers(d.short_seconds / 2, false).size(), 2u);
  // Every layer hashes alike: only density differs.
  for (const auto& layer : d.reference_layers(3.0, true))
    EXPECT_EQ(layer.hash_identity(), d.hash_identity());
  LandmarkParams off = d;
  off.sparse_peaks_per_second = 0;
  EXPECT_EQ(off.query_layers().size(), 1u);
  EXPECT_EQ(off.reference_layers(3.0, true).size(), 1u);
  off.sparse_peaks_per_second = -1;
  EXPECT_THROW(off.validate(), Error);
}

TEST(LandmarkParams, FrameTimeIsTheFrameCentre) {
  const LandmarkParams p;
  EXPECT_DOUBLE_EQ(p.frame_seconds(), 0.01);
  EXPECT_DOUBLE_EQ(p.frame_time(0), 512.0 / 16000);
  EXPECT_DOUBLE_EQ(p.frame_time(100), (100 * 160 + 512.0) / 16000);
}

}  // namespace
}  // namespace earmark
