// A dataset build's first task: the checks of its request that need the
// file system, which the coordinator does not read, and its labels.
#pragma once

#include "absl/status/statusor.h"
#include "retrain/v1/worker.pb.h"

namespace retrain::worker {

// Runs a CheckBuildTask: each path of the spec confined to the data roots
// with symlinks followed (PERMISSION_DENIED), the train and validation
// directories present (NOT_FOUND) and directories, the output directory a
// directory if it exists and without shards of another build
// (FAILED_PRECONDITION), and the labels: the labels file's lines (each with
// a directory in the first split) or the sorted label directories
// (INVALID_ARGUMENT). A refusal is the result's `refusal`, naming the field;
// an error is returned only when the check itself could not be made (a
// labels file that cannot be read for another reason than its absence).
absl::StatusOr<retrain::v1::CheckBuildResult> RunCheckBuildTask(
    const retrain::v1::CheckBuildTask& task);

}  // namespace retrain::worker
