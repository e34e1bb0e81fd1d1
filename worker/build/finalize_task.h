// The last task of a dataset build, on a worker.
#pragma once

#include "absl/status/statusor.h"
#include "retrain/v1/worker.pb.h"

namespace retrain::worker {

// Runs a FinalizeBuildTask: checks every shard against what its shard task
// recorded in the workspace (missing or cut short: listed in the result,
// nothing written), adds the files skipped while writing to the build's
// list, groups the written files by their content hashes, then writes
// skipped.jsonl, duplicates.jsonl, labels.txt and last dataset.json (each
// whole or not at all), and removes the workspace and temporary files that
// killed writers left. Run again
// after it finished (its answer lost), it reads the result back from the
// manifest. Errors: the output cannot be written, a workspace file is
// damaged.
absl::StatusOr<retrain::v1::FinalizeBuildResult> RunFinalizeBuildTask(
    const retrain::v1::FinalizeBuildTask& task);

}  // namespace retrain::worker
