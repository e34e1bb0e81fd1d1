// retrain-trainer's exit codes: what the trainer exits with (TrainerError's
// kinds map to them, trainer/trainer_error.h) and what the worker makes of
// them (worker/trainer_task.cc). A launcher of several ranks exits with the
// code of the rank that failed, 128 + the signal when it was killed.
#pragma once

namespace retrain::trainer::spec {

enum ExitCode : int {
  kExitSuccess = 0,
  kExitOther = 1,
  // Usage or configuration error.
  kExitConfig = 2,
  // Bad data (classify: some images were skipped).
  kExitBadData = 3,
  // The loss diverged (NaN or infinite).
  kExitDiverged = 4,
  // Out of memory at this batch size.
  kExitOutOfMemory = 5,
};

// Whether a run that exited with `code` would fail the same way again:
// the worker fails the task rather than retry it.
inline bool RetryCannotHelp(int code) { return code >= kExitConfig && code <= kExitOutOfMemory; }

// What an exit code means, for messages.
inline const char* DescribeExitCode(int code) {
  switch (code) {
    case kExitSuccess:
      return "success";
    case kExitConfig:
      return "a configuration error";
    case kExitBadData:
      return "bad data";
    case kExitDiverged:
      return "the loss diverged";
    case kExitOutOfMemory:
      return "out of memory";
    default:
      return "an error";
  }
}

}  // namespace retrain::trainer::spec
