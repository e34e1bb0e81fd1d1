// Planning a dataset build's shards on a worker, from its workspace.
#pragma once

#include "absl/status/statusor.h"
#include "retrain/v1/worker.pb.h"

namespace retrain::worker {

// Runs a PlanShardsTask: reads the listing and the validation outcomes in
// listing order (train, then validation; labels in order), writes every
// file left out to skipped.jsonl (listing refusals first, then validation
// failures) and every group of identical contents to duplicates.jsonl (in
// order of their hash; paths in listing order), and deals each split's good
// files into its shards (MakeShardTasks), one entries file per shard.
// Errors: a workspace file missing or damaged (NOT_FOUND, DATA_LOSS), or
// the workspace cannot be written.
absl::StatusOr<retrain::v1::PlanShardsResult> RunPlanShardsTask(
    const retrain::v1::PlanShardsTask& task);

}  // namespace retrain::worker
