#pragma once
// Streaming level normaliser (slow AGC + soft limiter) for the decoded mono signal.
//
// Why: recordings arrive at wildly different levels (a quiet phone capture, a mastered CD rip).
// Later stages pick spectral peaks against thresholds, so a roughly constant working level makes
// them behave the same on every input. The gain must vary slowly (seconds), otherwise it would
// reshape the music's own dynamics, and it must never change the length or timing of the signal
// because fingerprint times are sample positions.
//
// How:
//   * a short power estimate (~50 ms one-pole on x^2) feeds a slow level estimate with a fast-ish
//     attack (~0.5 s) and a slow release (~2.5 s): loud onsets pull the gain down quickly, quiet
//     passages bring it up slowly (no pumping on every drum hit);
//   * the level is measured ~0.2 s ahead of the sample being scaled (an internal delay line), so
//     the gain has already started to fall when a loud onset reaches the output;
//   * gain = target / RMS, limited to [min_gain_db, max_gain_db]; below the silence threshold the
//     gain fades to 0 dB over a 10 dB knee, so near-silence (hiss, digital zero) is not lifted to
//     the working level and there is no gain jump when a signal emerges from silence;
//   * a soft limiter (linear up to `limiter_knee`, then a tanh curve approaching 1) keeps every
//     output sample strictly inside [-1, 1] without hard clipping.
//
// Output sample i always corresponds to input sample i. Because of the look-ahead delay, process()
// returns output lagging the input by latency() samples; flush() emits the rest, so the total
// output length equals the total input length.
#include <cstddef>
#include <vector>

namespace earmark {

struct LevelNormaliserOptions {
  double target_rms_db = -20.0;   // working level, dBFS RMS
  double min_gain_db = -20.0;     // strongest attenuation
  double max_gain_db = 40.0;      // strongest amplification
  double silence_db = -70.0;      // RMS at or below this is not amplified at all
  double silence_knee_db = 10.0;  // between silence_db and silence_db + knee the gain ramps up
  double short_tau_s = 0.05;      // short-term power smoothing
  double attack_tau_s = 0.5;      // slow level estimate, rising
  double release_tau_s = 2.5;     // slow level estimate, falling
  double lookahead_s = 0.2;       // delay between level measurement and the scaled sample
  double limiter_knee = 0.5;      // soft limiter is linear below this magnitude
};

class LevelNormaliser {
 public:
  explicit LevelNormaliser(int sample_rate, const LevelNormaliserOptions& options = {});

  // Feeds `count` input samples; appends the output that is ready to `out` (lagging by latency()).
  void process(const float* in, size_t count, std::vector<float>& out);
  // Emits every sample still held in the delay line. The normaliser can be reused afterwards
  // (it starts afresh, as for a new stream).
  void flush(std::vector<float>& out);

  size_t latency() const { return delay_.size(); }
  // The gain (linear) applied to the latest output sample; 1 before any output and after flush().
  double current_gain() const { return gain_; }

 private:
  void initialise_from_buffer();
  double gain_for_power(double power) const;
  float limit(double y) const;
  void reset();

  LevelNormaliserOptions opt_;
  std::vector<float> delay_;  // ring buffer of the last latency() inputs
  size_t head_ = 0;           // next slot to read (oldest sample) / write
  size_t filled_ = 0;         // valid samples in the ring (< size only before the first output)
  bool initialised_ = false;  // level estimates seeded from the first look-ahead window
  double short_power_ = 0.0;
  double slow_power_ = 0.0;
  double gain_ = 1.0;
  // Derived constants.
  double a_short_ = 0.0, a_attack_ = 0.0, a_release_ = 0.0;
  double target_rms_ = 0.1, min_gain_ = 0.1, max_gain_ = 100.0;
  double silence_power_ = 0.0, knee_top_power_ = 0.0;
};

}  // namespace earmark
