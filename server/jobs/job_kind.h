// Job kinds: what one type of job adds to the engine's jobs, tasks, leases,
// workers, persistence, admission and quotas. A kind plans a job's tasks from
// its request, names the phase its running job is in and decides what each
// finished task means for the job. The engine calls a kind with its lock
// held; a kind keeps no state of its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "retrain/v1/coordinator_state.pb.h"
#include "retrain/v1/job.pb.h"
#include "retrain/v1/worker.pb.h"

namespace retrain::server {

// The engine as a job kind sees it while the engine's lock is held.
class JobEngine {
 public:
  virtual ~JobEngine() = default;
  // The job's tasks, in the order they were planned.
  virtual std::vector<const retrain::v1::TaskRecord*> TasksOf(
      const retrain::v1::Job& job) const = 0;
  // Adds `reason` to the job's history.
  virtual void AddEvent(retrain::v1::Job& job, const std::string& reason) = 0;
  // Ends the job in `state` (SUCCEEDED, FAILED or CANCELLED) with `reason`,
  // after the kind has filled its result; persists it.
  virtual void EndJob(retrain::v1::Job& job, retrain::v1::JobState state,
                      const std::string& reason) = 0;
};

// A job and its tasks, as a kind plans them from a request.
struct PlannedJob {
  retrain::v1::Job job;  // type and spec set
  std::vector<retrain::v1::Task> tasks;
  // The history's first entry: "dataset verification submitted: 12 shards".
  std::string reason;
};

class JobKind {
 public:
  virtual ~JobKind() = default;
  virtual retrain::v1::JobType type() const = 0;
  // What the job's progress shows as its phase while its tasks run, e.g.
  // "verifying".
  virtual std::string RunningPhase() const = 0;
  // Units (files, records) a task counts for in the job's progress.
  virtual int64_t TaskUnits(const retrain::v1::Task& task) const = 0;
  // One of the job's tasks finished; its result is in `task`. When the last
  // one has, the kind fills the job's result and ends it.
  virtual void TaskDone(JobEngine& engine, retrain::v1::Job& job,
                        const retrain::v1::TaskRecord& task) const = 0;
};

// The kind of jobs of `type`; null for the kinds the engine runs itself
// (dataset builds, training, evaluation).
const JobKind* FindJobKind(retrain::v1::JobType type);

}  // namespace retrain::server
