#pragma once
// Tempo and pitch changes with librubberband (offline mode, so the output is aligned with the
// input: no start delay to trim).
#include <vector>

namespace earmark {

// speed > 1 plays faster (a 5 % faster copy is speed 1.05: the output is 1/speed as long);
// semitones shifts the pitch without changing the duration. Throws earmark::Error for a speed
// outside [0.5, 2] or a shift outside +-12 semitones.
std::vector<float> change_tempo_and_pitch(const std::vector<float>& audio, double speed,
                                          double semitones, int rate = 16000);

}  // namespace earmark
