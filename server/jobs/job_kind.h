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
  // Whether every one of them is DONE.
  virtual bool AllTasksDone(const retrain::v1::Job& job) const = 0;
  // Adds `reason` to the job's history.
  virtual void AddEvent(retrain::v1::Job& job, const std::string& reason) = 0;
  // Ends the job in `state` (SUCCEEDED, FAILED or CANCELLED) with `reason`,
  // after the kind has filled its result; persists it.
  virtual void EndJob(retrain::v1::Job& job, retrain::v1::JobState state,
                      const std::string& reason) = 0;
  // The job's next phase: its tasks (all done) are dropped and `tasks`
  // queued in their place; `reason` goes into its history. Persists. The
  // records TasksOf() returned are gone after it.
  virtual void ReplaceTasks(retrain::v1::Job& job, std::vector<retrain::v1::Task> tasks,
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
  // What the job's progress shows as its phase while `task` runs, e.g.
  // "verifying".
  virtual std::string RunningPhase(const retrain::v1::Task& task) const = 0;
  // Whether the engine counts the job's progress from its tasks' units
  // (TaskUnits) and reports; false: the task reports the job's progress
  // itself (the trainer's steps).
  virtual bool ProgressFromTasks() const { return true; }
  // Units (files, records) a task counts for in the job's progress.
  virtual int64_t TaskUnits(const retrain::v1::Task& task) const = 0;
  // The history's entry when a task of the job is leased again, on
  // `where` ("worker w-2 (host)") for `attempt`; "" for none.
  virtual std::string RestartEvent(const std::string& where, int32_t attempt) const { return ""; }
  // One of the job's tasks finished; its result is in `task`. When the last
  // one has, the kind fills the job's result and ends it.
  virtual void TaskDone(JobEngine& engine, retrain::v1::Job& job,
                        const retrain::v1::TaskRecord& task) const = 0;
};

// The kind of jobs of `type`; null for dataset builds, which the engine
// still runs itself (coordinator_build.cc).
const JobKind* FindJobKind(retrain::v1::JobType type);

}  // namespace retrain::server
