// Job kinds: what one type of job adds to the engine's jobs, tasks, leases,
// workers, persistence, admission and quotas. A kind plans a job's tasks from
// its request, names the phase its running job is in, decides what each
// finished task means for the job and does the job's work that is not a
// worker's (listing files, writing a manifest) in steps off the engine's
// lock. The engine calls a kind with its lock held unless said otherwise; a
// kind keeps no state of its own: what a job needs between its phases is in
// its plan, which the engine keeps and persists with the job.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "retrain/v1/coordinator_state.pb.h"
#include "retrain/v1/job.pb.h"
#include "retrain/v1/worker.pb.h"
#include "server/data_roots.h"

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
  // queued in their place; `reason` goes into its history. Persists the job
  // and its plan. The records TasksOf() returned are gone after it.
  virtual void ReplaceTasks(retrain::v1::Job& job, std::vector<retrain::v1::Task> tasks,
                            const std::string& reason) = 0;
  // The job's plan, for the kind to change; Save() persists it.
  virtual retrain::v1::BuildPlan& PlanOf(const retrain::v1::Job& job) = 0;
  // Persists the job and its plan, recomputes its progress and wakes its
  // watchers.
  virtual void Save(retrain::v1::Job& job) = 0;
  // A QUEUED job starts RUNNING with its first `tasks` queued and `reason`
  // in its history. Persists the job and its plan.
  virtual void SetRunning(retrain::v1::Job& job, std::vector<retrain::v1::Task> tasks,
                          const std::string& reason) = 0;
  // Queues a task of the job that was DONE again (its output turned out
  // missing), with `reason` in the job's history.
  virtual void RedoTask(retrain::v1::Job& job, int64_t task_id, const std::string& reason) = 0;
  // OK when some registered worker has (in all) what `task` needs, or none is
  // registered yet; FAILED_PRECONDITION with the figures and what to lower
  // otherwise.
  virtual absl::Status CheckSomeWorkerCouldHost(const retrain::v1::TrainTask& task) const = 0;
  // Asks for the kind's next step off the lock (JobKind::RunStep) when the
  // kind wants one (JobKind::WantsStep). SetRunning and ReplaceTasks ask by
  // themselves: a phase without tasks is complete at once.
  virtual void ScheduleStep(const retrain::v1::Job& job) = 0;
};

// A job as a step off the engine's lock sees it: copies taken with the lock
// held.
struct JobSnapshot {
  retrain::v1::Job job;
  retrain::v1::BuildPlan plan;
  std::vector<retrain::v1::TaskRecord> tasks;  // the current phase's
  const DataRoots* roots = nullptr;            // the engine's
};

// What a step's work off the lock comes to, applied with the lock held to
// the job, when it is still there and has not ended.
using LockedStep = std::function<void(JobEngine& engine, retrain::v1::Job& job)>;

// A job and its tasks, as a kind plans them from a request.
struct PlannedJob {
  retrain::v1::Job job;  // type and spec set
  std::vector<retrain::v1::Task> tasks;
  retrain::v1::BuildPlan plan;  // empty for kinds that keep none
  // The history's first entry: "dataset verification submitted: 12 shards".
  std::string reason;
};

class JobKind {
 public:
  virtual ~JobKind() = default;
  virtual retrain::v1::JobType type() const = 0;
  // What the running job's progress shows as its phase, e.g. "verifying";
  // `plan` is the job's, `task` the first of its current tasks (null when
  // it has none). "": the phase stays as it is.
  virtual std::string RunningPhase(const retrain::v1::BuildPlan& plan,
                                   const retrain::v1::Task* task) const = 0;
  // Whether the engine counts the job's progress from its tasks' units
  // (TaskUnits) and reports; false: the task reports the job's progress
  // itself (the trainer's steps).
  virtual bool ProgressFromTasks() const { return true; }
  // Whether leasing `task` starts the QUEUED job RUNNING; a kind whose
  // request's check is part of admission keeps it QUEUED through it.
  virtual bool LeaseStartsJob(const retrain::v1::Task& task) const { return true; }
  // Units (files, records) a task counts for in the job's progress.
  virtual int64_t TaskUnits(const retrain::v1::Task& task) const = 0;
  // What those units are in the job's current phase ("files", "records"),
  // for its progress.
  virtual std::string ProgressUnit(const retrain::v1::BuildPlan& plan) const = 0;
  // Bytes a finished task counts for in the job's progress.
  virtual int64_t TaskBytes(const retrain::v1::TaskResult& result) const { return 0; }
  // Inputs a finished task left out (skipped files), for the job's progress
  // beside those in the plan.
  virtual int64_t TaskSkipped(const retrain::v1::TaskResult& result) const { return 0; }
  // Inputs a finished task found (files listed), for the job's progress.
  virtual int64_t TaskFound(const retrain::v1::TaskResult& result) const { return 0; }
  // The history's entry when a task of the job is leased again, on
  // `where` ("worker w-2 (host)") for `attempt`; "" for none.
  virtual std::string RestartEvent(const std::string& where, int32_t attempt) const { return ""; }
  // One of the job's tasks finished; its result is in `task`. When the last
  // one has, the kind fills the job's result and ends it.
  virtual void TaskDone(JobEngine& engine, retrain::v1::Job& job,
                        const retrain::v1::TaskRecord& task) const = 0;

  // Steps off the lock. Whether the job, with its plan, waits for a step:
  // the engine asks when the job is admitted, when it loads it at start
  // and when the kind calls ScheduleStep().
  virtual bool WantsStep(const retrain::v1::Job& job, const retrain::v1::BuildPlan& plan,
                         bool all_tasks_done) const {
    return false;
  }
  // The step, on the engine's planner thread without its lock: file-system
  // work from the snapshot; what it returns is applied with the lock held
  // (and must check that the job is still where the snapshot saw it).
  virtual LockedStep RunStep(const JobSnapshot& snapshot) const { return nullptr; }
  // The job ended in `state` (its tasks are gone): what the kind cleans up.
  virtual void JobEnded(const retrain::v1::Job& job, retrain::v1::JobState state) const {}
};

// The phase a job shows while a worker checks its request against the file
// system (its first task, for the kinds whose inputs the coordinator does
// not read).
inline constexpr char kCheckingPhase[] = "checking the request";

// Whether `task` is a request's check (a job's first task, reading a few
// files on a worker): leased apart from the rest (LeaseTaskRequest.
// checks_only), so that a worker runs it beside its other task.
bool IsRequestCheck(const retrain::v1::Task& task);

// A worker's check refused the job's request: the job, its request now
// checked, fails with the refusal's message and code (Job.error_code);
// `refusal` is a copy: ending the job drops the task it came from.
void EndRefused(JobEngine& engine, retrain::v1::Job& job, retrain::v1::RequestRefusal refusal);
// The result of a check (CheckTrainingResult, CheckVerifyResult): if it
// holds a refusal, the job ends with it (EndRefused) and this returns true.
template <typename CheckResult>
bool EndIfRefused(JobEngine& engine, retrain::v1::Job& job, const CheckResult& checked) {
  if (!checked.has_refusal()) return false;
  EndRefused(engine, job, checked.refusal());
  return true;
}

// "task 7 (train-00003-of-00008)": how logs and job history name a task.
std::string TaskName(const retrain::v1::TaskRecord& task);

// The kind of jobs of `type`; null for none (JOB_TYPE_UNSPECIFIED).
const JobKind* FindJobKind(retrain::v1::JobType type);

}  // namespace retrain::server
