// Training and evaluation jobs (`retrain train`, `retrain eval`). A training
// request's fields and paths are checked at submission; its first task, a
// worker's check, reads the dataset's manifest and describes the checkpoints
// it would resume or start from (the coordinator reads no data). Judged
// against the spec and the trainer's memory plan, the request then becomes
// one task per worker it spans (the engine places them together); the job
// stays QUEUED until they start. When every part has trained, the job
// evaluates its final checkpoint and ends with the figures. An evaluation
// job is its check and that last step. What a train task needs of a worker
// is here too, for the engine's placement.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "retrain/v1/job_service.pb.h"
#include "retrain/v1/worker.pb.h"
#include "server/data_roots.h"
#include "server/jobs/job_kind.h"

namespace retrain::server {

// The job and its check task: INVALID_ARGUMENT naming the field of a bad
// spec, PERMISSION_DENIED for a path spelled outside the data roots. What
// the files show (FAILED_PRECONDITION when the dataset, the checkpoints or
// the weights disagree with the spec, or no worker has the memory) fails the
// job after the check, with the code in Job.error_code.
absl::StatusOr<PlannedJob> PlanTraining(const retrain::v1::SubmitTrainingRequest& request,
                                        const DataRoots& roots);
absl::StatusOr<PlannedJob> PlanEvaluation(const retrain::v1::SubmitEvaluationRequest& request,
                                          const DataRoots& roots);

const JobKind& TrainingKind();
const JobKind& EvaluationKind();

// "2 GPU(s) with 9.1 GiB each and 1.9 GiB of host memory on one worker".
std::string DescribeNeed(const retrain::v1::TrainTask& task);
// Whether `worker` has the cores, GPUs (with their memory) and host memory
// `task` needs: free now, or in all.
bool WorkerCanHost(const retrain::v1::Worker& worker, const retrain::v1::TrainTask& task,
                   bool free_now);
// Examples each rank of a job of `spec` takes per step.
int32_t ExamplesPerRank(const retrain::v1::TrainingSpec& spec);
// "1.7 GiB", "340.0 MiB": the trainer's own formatting.
std::string GiB(int64_t bytes);

}  // namespace retrain::server
