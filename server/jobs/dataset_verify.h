// Dataset verification (`retrain verify-dataset`): every shard of a built
// dataset re-read by the workers, one task a shard, against the manifest;
// the job SUCCEEDS when the dataset is intact and FAILS naming the damaged
// shards, its result listing every problem with file and offset.
#pragma once

#include "absl/status/statusor.h"
#include "retrain/v1/dataset.pb.h"
#include "server/data_roots.h"
#include "server/jobs/job_kind.h"

namespace retrain::server {

// The job and its tasks for `spec`: INVALID_ARGUMENT or PERMISSION_DENIED
// naming spec.data_dir for a path outside the data roots, FAILED_PRECONDITION
// when the directory holds no readable manifest (the manifest is the
// reference a verification needs).
absl::StatusOr<PlannedJob> PlanDatasetVerify(const retrain::v1::DatasetVerifySpec& spec,
                                             const DataRoots& roots);

const JobKind& DatasetVerifyKind();

}  // namespace retrain::server
