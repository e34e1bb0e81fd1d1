// Train and eval tasks: the worker runs retrain-trainer as a child process,
// turns its JSON events (stdout) into progress and training points, relays
// its log lines (stderr), stops it on request, and maps how it ended to a status. No RPC.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "retrain/v1/job.pb.h"
#include "retrain/v1/worker.pb.h"

namespace retrain::worker {

// What a running trainer said since the last report.
struct TrainerReport {
  // Its latest figures (step, loss, ... and the last evaluation's precision).
  retrain::v1::JobProgress progress;
  // Its log lines (stderr), in order.
  std::vector<std::string> lines;
  // Each step, evaluation and checkpoint event (stdout) as a point, in order.
  std::vector<retrain::v1::TrainingPoint> points;
};

struct TrainerContext {
  // The retrain-trainer binary.
  std::string trainer_path;
  // Called about once a second (and at the end) from the running thread:
  // true when the coordinator took the report (or refused it); false when
  // it could not be reached, and the report's lines and points go again,
  // with those that came since, in the next one. The last report is tried
  // until it goes through or the task is cancelled or its lease lost.
  std::function<bool(const TrainerReport& report)> report;
  // Set from another thread to stop: the trainer gets SIGTERM (it writes a
  // checkpoint and exits), then SIGKILL after `stop_grace_secs`.
  const std::atomic<bool>* cancelled = nullptr;
  int stop_grace_secs = 30;
  // Set from another thread when the task's lease is lost (the coordinator
  // may already have given the work to another worker): the trainer gets
  // SIGKILL at once, so it writes nothing more into the train_dir.
  const std::atomic<bool>* lease_lost = nullptr;
};

// The trainer's exit status as a status: OK; FAILED_PRECONDITION for what a
// retry cannot fix (a configuration error, bad data, a diverged loss, out
// of memory at this batch size), with the trainer's own last error line;
// INTERNAL for a crash or a signal (a retry from the checkpoint may help);
// CANCELLED when `cancelled` stopped it.
absl::StatusOr<retrain::v1::TrainTaskResult> RunTrainTask(const retrain::v1::TrainTask& task,
                                                         const TrainerContext& context);
absl::StatusOr<retrain::v1::EvalTaskResult> RunEvalTask(const retrain::v1::EvalTask& task,
                                                       const TrainerContext& context);

// retrain-trainer's arguments for a spec: `train`, then `--<field> <value>`
// for every field that is set, named as in TrainingSpec (a bool as a bare
// `--<field>`), but for the coordinator's own fields (num_workers) and the
// trainer's defaults (num_gpus 0, num_replicas 1). TrainingSpec is the one
// list of the trainer's knobs that the service passes on.
std::vector<std::string> TrainArguments(const retrain::v1::TrainingSpec& spec);

}  // namespace retrain::worker
