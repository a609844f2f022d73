#pragma once
// Sound logos (jingles, notification sounds) are short, often one attack and a decay, and are
// mixed into louder programme material: too few of their landmarks survive for the hash stage
// to find them. A logo template keeps instead the logo's whole time-frequency contrast pattern,
// which LogoMatcher correlates densely against the query.
//
// Both sides use the same representation: the landmark spectrogram (64 ms frames, 10 ms hop)
// max-pooled into half-semitone bands and pairs of frames (20 ms steps), in dB, minus the mean
// of the neighbouring bands. The local contrast removes the spectral tilt that every recording
// shares, so two unrelated sounds do not correlate merely for being louder in the bass.
//
// A template also keeps the logo's constellation: its spectral peaks, as the landmark stage picks
// them at the density of short references. Where programme material masks most of the logo's
// contrast pattern, the peaks that stick out of it still sit where they should, and a peak needs
// only itself to survive where a landmark needs three (LogoPeakMatcher).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "earmark/landmarks/landmark_params.h"
#include "earmark/landmarks/landmark_spectrogram.h"
#include "earmark/landmarks/peak_picker.h"

namespace earmark {

// Changing any of these changes what a stored template means: bump kLogoTemplateVersion.
constexpr int kLogoTemplateVersion = 2;   // 2: with the constellation; 1 is still read
constexpr int kLogoFramesPerStep = 2;     // 20 ms steps
constexpr int kLogoBandsPerOctave = 24;   // half-semitone bands
constexpr int kLogoContrastRadius = 8;    // bands each side in the local mean
constexpr float kLogoSupportDb = 35.0f;   // template cells: within this of the loudest cell
constexpr double kLogoMaxSeconds = 15.0;  // longer references keep their first 15 s

// Landmark spectrogram frames -> one frame of band contrast per step, streaming. It is fed the
// frames the landmark stage computes anyway (LayeredExtractor's frame tap).
class ContrastSpectrogram {
 public:
  // step index, level (dB) and contrast (dB) of num_bands() bands
  using StepSink = std::function<void(int step, const float* level_db, const float* contrast)>;

  ContrastSpectrogram(const LandmarkParams& params, StepSink sink);

  int num_bands() const { return num_bands_; }
  double step_seconds() const { return params_.frame_seconds() * kLogoFramesPerStep; }
  // Time of a step's first frame centre, on the landmark stage's clock.
  double step_time(double step) const { return params_.frame_time(step * kLogoFramesPerStep); }

  // One frame of LandmarkSpectrogram log-power, in frame order.
  void push_frame(const float* log_power);
  // Emits the last, partial step.
  void finish();

 private:
  void emit();

  LandmarkParams params_;
  StepSink sink_;
  std::vector<int> band_of_bin_;
  int num_bands_ = 0;
  std::vector<float> level_;  // max over the frames of the current step
  std::vector<float> contrast_;
  std::vector<float> prefix_;
  int frames_in_step_ = 0;
  int next_step_ = 0;
};

// A peak of the logo's constellation: its frame (refined, landmark frames from the logo's start)
// and its frequency in FFT bins (refined).
struct LogoPeak {
  float frame = 0;
  float bin = 0;
};

struct LogoCell {
  uint16_t step = 0;
  uint16_t band = 0;
  float value = 0;  // contrast minus the template's mean contrast
};

class LogoTemplate {
 public:
  // The template of a whole recording (its first kLogoMaxSeconds); nullopt when it holds nothing
  // above silence to correlate with.
  static std::optional<LogoTemplate> build(const LandmarkParams& params, const float* samples,
                                           size_t count);
  // Incremental form of build(), fed the landmark spectrogram of a recording being indexed.
  class Builder {
   public:
    explicit Builder(const LandmarkParams& params);
    void push_frame(const float* log_power);
    std::optional<LogoTemplate> finish();

   private:
    LandmarkParams params_;
    ContrastSpectrogram spectrogram_;
    PeakPicker picker_;
    std::vector<LogoPeak> peaks_;
    int frames_ = 0;
    int max_steps_;
    std::vector<float> level_, contrast_;  // step-major
    int steps_ = 0;
  };

  // A self-describing byte string (version, geometry, cells, checksum) for the catalogue.
  std::string serialise() const;
  // Throws earmark::Error on a damaged or foreign blob.
  static LogoTemplate parse(const std::string& blob);

  int steps() const { return steps_; }
  int num_bands() const { return num_bands_; }
  // Sorted by band, then step, so matching walks each band's query column in order.
  const std::vector<LogoCell>& cells() const { return cells_; }
  // Sum of the squared (centred) cell values.
  double energy() const { return energy_; }
  // In frame order; empty for a template stored before constellations were kept.
  const std::vector<LogoPeak>& peaks() const { return peaks_; }

 private:
  int steps_ = 0;
  int num_bands_ = 0;
  std::vector<LogoCell> cells_;
  std::vector<LogoPeak> peaks_;
  double energy_ = 0;
};

}  // namespace earmark
