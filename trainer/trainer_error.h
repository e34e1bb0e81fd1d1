// The trainer's one error type. The trainer builds on machines without
// abseil (GPU hosts), and LibTorch reports failures by exception, so the
// trainer does too: everything it cannot go on from is a TrainerError with
// a message that names the file, flag or value and what to do, caught once
// in main() and printed as one line.
#pragma once

#include <stdexcept>
#include <string>

#include "trainer/spec/exit_codes.h"

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

// retrain-trainer's exit code for a failure of `kind` (spec/exit_codes.h).
inline int ExitCodeOf(TrainerError::Kind kind) {
  switch (kind) {
    case TrainerError::Kind::kConfig:
      return spec::kExitConfig;
    case TrainerError::Kind::kData:
      return spec::kExitBadData;
    case TrainerError::Kind::kNumerical:
      return spec::kExitDiverged;
    case TrainerError::Kind::kOutOfMemory:
      return spec::kExitOutOfMemory;
    default:
      return spec::kExitOther;
  }
}

}  // namespace retrain::trainer
