#pragma once
// One exception type for every failure a user can cause (bad file, bad parameter, bad index).
// The CLI turns it into a one-line message and a non-zero exit; it never means a bug.
#include <stdexcept>
#include <string>

namespace earmark {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace earmark
