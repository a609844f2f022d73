#pragma once
// Finds sound logos in a query by correlating each logo template with the query's band contrast
// at every 20 ms offset, streaming in blocks so memory stays bounded on long recordings.
//
// Score: the template's Pearson correlation with the query at an offset, against what the same
// template reaches elsewhere in the same block (the query's own chance level, which depends on
// how tonal and busy the programme is), Fisher-transformed and scaled by the square root of the
// template's effective number of independent cells:
//   score = (atanh(r) - atanh(r_elsewhere)) * sqrt(independent cells)
// so a long, varied logo needs a smaller correlation than one held tone to reach the same score.
#include <cstddef>
#include <vector>

#include "earmark/matching/logo_template.h"

namespace earmark {

struct LogoMatchOptions {
  // Set on the development split (both query sets, 2,520 queries): the lowest that keeps the
  // false-positive rate on music negatives under 1 % and on logo-free backgrounds at 0.
  double min_score = 6.5;
  int block_steps = 500;  // offsets evaluated together (10 s); also the chance-level window
};

struct LogoDetection {
  size_t logo = 0;  // index into the templates given to the matcher
  int step = 0;     // query step where the logo starts
  int steps = 0;    // its length in steps
  double correlation = 0;
  double score = 0;
};

class LogoMatcher {
 public:
  // Every template must have num_bands bands; they must outlive the matcher.
  LogoMatcher(std::vector<const LogoTemplate*> logos, int num_bands, LogoMatchOptions options = {});

  void push_step(const float* contrast);
  void finish();
  // Start order; overlapping detections of one logo are merged into the best of them.
  std::vector<LogoDetection> detections() const;

 private:
  void evaluate(int first, int last);
  void record(const LogoDetection& d);

  std::vector<const LogoTemplate*> logos_;
  int num_bands_;
  LogoMatchOptions options_;
  int longest_ = 0;
  std::vector<std::vector<float>> columns_;  // per band, the steps from base_ on
  int base_ = 0;
  int steps_ = 0;
  struct SupportRun {
    int band, begin, end;  // steps [begin, end) of one band are all in the template
  };
  std::vector<std::vector<SupportRun>> runs_;            // per logo
  std::vector<double> degrees_;                          // per logo: independent cells
  std::vector<std::vector<double>> prefix_, prefix_sq_;  // per band, over the held steps
  std::vector<float> sxy_, sy_, syy_;
  std::vector<double> corr_;
  std::vector<LogoDetection> found_;
  std::vector<int> last_found_;  // per logo, index into found_ or -1
};

}  // namespace earmark
