// Dataset builds (`retrain build`): a request is checked against the data
// roots, the labels and the output directory; the job then lists the files
// (off the engine's lock), shuffles them into shard tasks that validate them
// and write the shards, and finalizes: it checks every shard is on disk,
// groups identical files, writes the labels file and the manifest, and ends
// with the counts. Its plan (BuildPlan) carries the labels, the listing and the
// files left out from one phase to the next.
#pragma once

#include "absl/status/statusor.h"
#include "retrain/v1/dataset.pb.h"
#include "server/data_roots.h"
#include "server/jobs/job_kind.h"

namespace retrain::server {

// The job and its plan (no tasks: listing the files is the job's first
// step): INVALID_ARGUMENT naming the field of a bad spec, NOT_FOUND for a
// missing directory or labels file, PERMISSION_DENIED for a path outside
// the data roots, FAILED_PRECONDITION when the output directory holds
// another build's shards.
absl::StatusOr<PlannedJob> PlanDatasetBuild(const retrain::v1::DatasetBuildSpec& spec,
                                            const DataRoots& roots);

const JobKind& DatasetBuildKind();

}  // namespace retrain::server
