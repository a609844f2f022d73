#pragma once
#include <cmath>
#include <cstdint>

namespace earmark {

// A spectral peak: the unit landmarks are built from.
struct SpectralPeak {
  int32_t frame = 0;        // STFT frame index (hop units) from the start of the audio
  float time = 0.0f;        // frame refined by parabolic interpolation
  float pitch = 0.0f;       // log-frequency in semitones (MIDI scale: 69 = 440 Hz), refined
  float bin = 0.0f;         // the same frequency in FFT bins, refined
  float prominence = 0.0f;  // log-magnitude above the local spectral level
};

// Semitones on the MIDI scale of a frequency in Hz.
inline float hz_to_pitch(double hz) { return float(69.0 + 12.0 * std::log2(hz / 440.0)); }

}  // namespace earmark
