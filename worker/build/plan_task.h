// Planning a dataset build's shards on a worker, from its workspace.
#pragma once

#include "absl/status/statusor.h"
#include "retrain/v1/worker.pb.h"

namespace retrain::worker {

// Runs a PlanShardsTask: reads the listing in listing order (train, then
// validation; labels in order), writes the files refused while listing to
// the workspace's skipped.jsonl, and deals each split's listed files into
// its shards (MakeShardTasks), one entries file per shard; the shard tasks
// validate them.
// Errors: a workspace file missing or damaged (NOT_FOUND, DATA_LOSS), or
// the workspace cannot be written.
absl::StatusOr<retrain::v1::PlanShardsResult> RunPlanShardsTask(
    const retrain::v1::PlanShardsTask& task);

}  // namespace retrain::worker
