#pragma once
// The degradations a reference meets on its way to a query, applied to training audio (mono float
// at 16 kHz unless a rate is given). Each is a small deterministic function of its arguments, so
// a training example is reproducible from its seed. FFmpeg codec round trips and rubberband's
// tempo and pitch changes live beside these (codec_round_trip.h, time_pitch.h).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace earmark {

// Adds `background` (looped if shorter) scaled so that the ratio of the signal's mean power to
// the background's is snr_db. A silent signal or background is left alone.
void mix_at_snr(std::vector<float>& signal, const std::vector<float>& background, double snr_db,
                size_t background_offset = 0);

// Multiplies by 10^(gain_db/20) and clips hard at +-1, as an overdriven chain does.
void apply_gain_and_clip(std::vector<float>& signal, double gain_db);

// A second-order IIR section (RBJ cookbook designs), run in direct form I.
struct Biquad {
  double b0 = 1, b1 = 0, b2 = 0, a1 = 0, a2 = 0;
  static Biquad lowpass(double hz, double q, int rate);
  static Biquad highpass(double hz, double q, int rate);
  static Biquad peaking(double hz, double q, double gain_db, int rate);
  static Biquad low_shelf(double hz, double gain_db, int rate);
  static Biquad high_shelf(double hz, double gain_db, int rate);
  void apply(std::vector<float>& signal) const;
};

// Room reverberation: convolution with a synthetic impulse response (the direct sound, then
// exponentially decaying noise reaching -60 dB after rt60_s), mixed `wet` against the dry signal.
// The output has the input's length and alignment (the direct path has no delay).
void apply_reverb(std::vector<float>& signal, double rt60_s, double wet, uint64_t seed,
                  int rate = 16000);

// Mean power (mean square) of a signal; 0 for an empty one.
double mean_power(const float* samples, size_t count);

}  // namespace earmark
