#pragma once
// Finds sound logos in a query by their constellation: every peak of a logo votes for each query
// offset at which the query has a peak in the same place (within one frame and one FFT bin),
// and the offset with the most votes is tested against the votes offsets get by chance.
//
// A landmark needs three peaks to survive the mix and the dense template needs most of the
// logo's contrast pattern; a constellation needs only as many of its single peaks as stick out
// of the programme. Where a logo sits under speech or music at 0 dB or below, that is what is
// left of it.
//
// Score: with lambda the mean votes per offset in the block (how busy the query's spectrum is),
// the surprise of the best offset's k votes under a Poisson count, less the number of offsets
// tried (a Bonferroni bound), in decimal orders of magnitude:
//   score = -log10 P(X >= k | lambda) - log10(offsets)
// so 7 means one such count per ten million blocks of chance.
#include <cstddef>
#include <vector>

#include "earmark/landmarks/spectral_peak.h"
#include "earmark/matching/logo_template.h"

namespace earmark {

struct LogoPeakOptions {
  // Set on the development split (2,520 queries): with the template and landmark stages beside
  // it, no false positive on the backgrounds without a logo and none added on music negatives.
  double min_score = 8.0;
  int block_frames = 1000;  // offsets evaluated together (10 s); also the chance-level window
  float bin_tolerance = 1.0f;
  int frame_tolerance = 1;
};

struct LogoPeakDetection {
  size_t logo = 0;  // index into the templates given to the matcher
  int frame = 0;    // query frame where the logo's first frame sits (may be negative: cut off)
  int frames = 0;   // the logo's length in frames
  int votes = 0;    // logo peaks found in place
  double score = 0;
};

class LogoPeakMatcher {
 public:
  // Templates without a constellation are skipped; they must outlive the matcher.
  LogoPeakMatcher(std::vector<const LogoTemplate*> logos, LogoPeakOptions options = {});

  // The query's peaks in frame order (PeakPicker's sink); every peak before `watermark` has come.
  void push_peaks(const std::vector<SpectralPeak>& peaks, int watermark);
  void finish();
  // Start order; one detection per occurrence of a logo.
  std::vector<LogoPeakDetection> detections() const;

  // -log10 P(X >= k) for X ~ Poisson(lambda).
  static double poisson_surprise(int k, double lambda);

 private:
  struct QueryPeak {
    float frame, bin;
  };
  void evaluate(int first, int last);
  void record(const LogoPeakDetection& d);
  static int frames_of(const LogoTemplate& t) { return t.steps() * kLogoFramesPerStep; }

  std::vector<const LogoTemplate*> logos_;
  std::vector<size_t> logo_index_;  // position of each kept template in the caller's list
  LogoPeakOptions options_;
  int longest_ = 0;
  std::vector<QueryPeak> held_;  // frame order, from base_ - longest_ on
  int base_ = 0;                 // first offset not yet evaluated
  int last_frame_ = -1;
  std::vector<LogoPeakDetection> found_;
  std::vector<int> hist_, stamp_;
  std::vector<QueryPeak> by_bin_;
};

}  // namespace earmark
