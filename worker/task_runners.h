// The registry of what a worker can run: one runner for each kind of task
// (each field of Task's `kind` oneof). The agent leases a task and runs
// the runner of its kind; a new kind of task adds its runner here.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "retrain/v1/worker.pb.h"
#include "worker/task_runner.h"
#include "worker/trainer_task.h"

namespace retrain::worker {

// Everything a runner may use; the agent fills both for every task.
struct TaskEnvironment {
  RunContext run;          // conversion threads, progress, cancellation, lease checks
  TrainerContext trainer;  // the trainer binary and its reports (train and eval tasks)
};

struct TaskRunner {
  // What the worker's log says the task does, e.g. "write train-00003-of-00128".
  std::function<std::string(const retrain::v1::Task&)> describe;
  // Runs the task; see the runners' own headers for their statuses.
  std::function<absl::StatusOr<retrain::v1::TaskResult>(const retrain::v1::Task&,
                                                        const TaskEnvironment&)>
      run;
};

// The runner of `kind`; null when this worker does not know it.
const TaskRunner* FindTaskRunner(retrain::v1::Task::KindCase kind);

}  // namespace retrain::worker
