#include "earmark/training/time_pitch.h"

#include <rubberband/RubberBandStretcher.h>

#include <algorithm>
#include <cmath>

#include "earmark/common/error.h"

namespace earmark {

std::vector<float> change_tempo_and_pitch(const std::vector<float>& audio, double speed,
                                          double semitones, int rate) {
  if (!(speed >= 0.5 && speed <= 2.0)) throw Error("tempo change: speed must be in [0.5, 2]");
  if (!(std::abs(semitones) <= 12)) throw Error("pitch change: shift must be within 12 semitones");
  if (audio.empty()) return {};
  using RB = RubberBand::RubberBandStretcher;
  RB stretcher(size_t(rate), 1,
               RB::OptionProcessOffline | RB::OptionThreadingNever | RB::OptionEngineFaster,
               1.0 / speed, std::pow(2.0, semitones / 12.0));
  stretcher.setExpectedInputDuration(audio.size());
  stretcher.setMaxProcessSize(audio.size());
  const float* in[1] = {audio.data()};
  stretcher.study(in, audio.size(), true);
  stretcher.process(in, audio.size(), true);
  std::vector<float> out;
  out.reserve(size_t(audio.size() / speed) + 1024);
  std::vector<float> block(4096);
  for (;;) {
    const int available = stretcher.available();
    if (available <= 0) break;
    float* o[1] = {block.data()};
    const size_t got = stretcher.retrieve(o, std::min<size_t>(block.size(), size_t(available)));
    out.insert(out.end(), block.begin(), block.begin() + got);
  }
  return out;
}

}  // namespace earmark
