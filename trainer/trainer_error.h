// The trainer's one error type. The trainer builds on machines without
// abseil (GPU hosts), and LibTorch reports failures by exception, so the
// trainer does too: everything it cannot go on from is a TrainerError with
// a message that names the file, flag or value and what to do, caught once
// in main() and printed as one line.
#pragma once

#include <stdexcept>
#include <string>

namespace retrain::trainer {

class TrainerError : public std::runtime_error {
 public:
  // What kind of failure, so that main() can exit with a distinct code and
  // a supervisor can tell a configuration error (retrying cannot help)
  // from the rest.
  enum class Kind { kConfig, kData, kNumerical, kOutOfMemory, kInternal };

  TrainerError(Kind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// retrain-trainer's exit code for a failure of `kind`: 2 configuration
// (retrying cannot help), 3 bad data, 4 the loss diverged, 5 out of
// memory, 1 anything else.
inline int ExitCodeOf(TrainerError::Kind kind) {
  switch (kind) {
    case TrainerError::Kind::kConfig:
      return 2;
    case TrainerError::Kind::kData:
      return 3;
    case TrainerError::Kind::kNumerical:
      return 4;
    case TrainerError::Kind::kOutOfMemory:
      return 5;
    default:
      return 1;
  }
}

// What an exit code of retrain-trainer means, for messages.
inline const char* DescribeExitCode(int code) {
  switch (code) {
    case 0:
      return "success";
    case 2:
      return "a configuration error";
    case 3:
      return "bad data";
    case 4:
      return "the loss diverged";
    case 5:
      return "out of memory";
    default:
      return "an error";
  }
}

}  // namespace retrain::trainer
