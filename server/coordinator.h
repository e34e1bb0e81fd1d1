// The coordinator's engine: jobs, their tasks, leases and workers. It knows
// nothing of gRPC; the service classes translate requests to these calls.
//
// The engine is generic: what each type of job adds (planning, phases,
// results) is its JobKind (server/jobs/).
//
// Thread-safe: every public method may be called from any thread. State is
// guarded by one mutex (mu_; clang checks the annotations, see
// common/mutex.h); the kinds' file-system work (listing files, writing
// manifests) runs in steps on the planner thread without holding it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "retrain/v1/coordinator_state.pb.h"
#include "retrain/v1/job_service.pb.h"
#include "retrain/v1/worker_service.pb.h"
#include "server/coordinator_stats.h"
#include "server/data_roots.h"
#include "server/jobs/job_kind.h"
#include "server/store.h"

namespace retrain::server {

struct CoordinatorOptions {
  // Folders requests may read and write; at least one.
  std::vector<std::string> data_roots;
  // Where the SQLite database lives (when Create() is given no store).
  std::string state_dir;
  // What the engine reads the time from; null: the system clock. Not owned;
  // must outlive the coordinator.
  Clock* clock = nullptr;
  // How often the background thread expires leases, marks silent workers
  // lost and places jobs; 0: no background thread, the owner calls Tick().
  int tick_interval_ms = 250;
  // A lease not extended by a heartbeat for this long expires, and a worker
  // silent for this long is marked lost.
  int lease_timeout_ms = 15000;
  int heartbeat_interval_ms = 2000;
  // Leases of one task before the job fails.
  int max_task_attempts = 4;
  // Unfinished (QUEUED or RUNNING) jobs one submitter may have at once;
  // more are refused (RESOURCE_EXHAUSTED) until some end.
  int max_pending_jobs_per_client = 1000;
  // Finished jobs kept in memory, the newest; older ones are read from the
  // database when asked for (GetJob, ListJobs, WatchJob, logs), so memory
  // stays bounded however many jobs have run.
  int max_finished_jobs_in_memory = 10000;
  // Called when a write to the store fails (the in-memory state is then
  // ahead of it), from the writing thread with the coordinator's lock held;
  // must not return. Null: log and abort, and a restart reloads the state.
  std::function<void(const absl::Status&)> on_store_failure;
};

// Orders job ids "j-<seq>" by their number (shorter first), which is
// submission order also past j-999999.
struct JobIdOrder {
  bool operator()(const std::string& a, const std::string& b) const {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  }
};

class Coordinator {
 public:
  // Opens the state, re-queues what was in flight and starts the background
  // threads.
  // `store`: the state to load and write; null opens the SQLite database in
  // options.state_dir.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(CoordinatorOptions options,
                                                             std::unique_ptr<Store> store = nullptr);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // --- clients ---
  // `submitter`: who asks (the client's host), kept with the job and
  // counted against CoordinatorOptions::max_pending_jobs_per_client.
  // Each job is planned by its kind (server/jobs/): dataset builds
  // (dataset_build.h), training and evaluation (training.h: checked against
  // the dataset, the trainer's memory plan and the registered workers; a
  // job no worker could ever host is refused with the figures, one that
  // must wait stays QUEUED with the reason), dataset verification
  // (dataset_verify.h); then admitted and run by the engine.
  absl::StatusOr<retrain::v1::Job> SubmitDatasetBuild(
      const retrain::v1::SubmitDatasetBuildRequest& request, const std::string& submitter = "");
  absl::StatusOr<retrain::v1::Job> SubmitTraining(const retrain::v1::SubmitTrainingRequest& request,
                                                  const std::string& submitter = "");
  absl::StatusOr<retrain::v1::Job> SubmitEvaluation(
      const retrain::v1::SubmitEvaluationRequest& request, const std::string& submitter = "");
  absl::StatusOr<retrain::v1::Job> SubmitDatasetVerify(
      const retrain::v1::SubmitDatasetVerifyRequest& request, const std::string& submitter = "");
  // What a training or evaluation job's trainers logged
  // (coordinator_trainer_output.cc): its log lines, and its series of
  // steps, evaluations and checkpoints, from an offset on. NotFound naming
  // job_id for a job that never was; InvalidArgument naming `offset` when
  // it is negative.
  absl::StatusOr<retrain::v1::GetJobLogsResponse> GetJobLogs(
      const retrain::v1::GetJobLogsRequest& request) const;
  absl::StatusOr<retrain::v1::GetJobMetricsResponse> GetJobMetrics(
      const retrain::v1::GetJobMetricsRequest& request) const;
  absl::StatusOr<retrain::v1::Job> GetJob(const std::string& job_id) const;
  absl::StatusOr<retrain::v1::ListJobsResponse> ListJobs(
      const retrain::v1::ListJobsRequest& request) const;
  absl::StatusOr<retrain::v1::Job> CancelJob(const std::string& job_id, const std::string& reason);
  // Blocks until the job's version passes `*version` or `timeout` passes,
  // then returns the job and stores its version. `*version` 0 returns at
  // once.
  absl::StatusOr<retrain::v1::Job> WaitForJobChange(const std::string& job_id, uint64_t* version,
                                                    std::chrono::milliseconds timeout) const;
  std::vector<retrain::v1::Worker> ListWorkers() const;
  // Counts and totals for metrics (coordinator_stats.cc).
  CoordinatorStats Stats() const;
  // The periodic work, now: expires leases past their deadline, marks
  // workers silent for a lease timeout lost, places jobs over several
  // workers, refreshes progress and queue reasons. The background thread
  // calls it every tick_interval_ms.
  void Tick();

  // --- workers ---
  absl::StatusOr<retrain::v1::RegisterWorkerResponse> RegisterWorker(
      const retrain::v1::RegisterWorkerRequest& request);
  absl::StatusOr<retrain::v1::HeartbeatResponse> Heartbeat(
      const retrain::v1::HeartbeatRequest& request);
  // Waits up to request.wait_ms (at most 10 s) for a task.
  absl::StatusOr<retrain::v1::LeaseTaskResponse> LeaseTask(
      const retrain::v1::LeaseTaskRequest& request);
  absl::StatusOr<retrain::v1::ReportProgressResponse> ReportProgress(
      const retrain::v1::ReportProgressRequest& request);
  absl::Status CompleteTask(const retrain::v1::CompleteTaskRequest& request);
  absl::Status FailTask(const retrain::v1::FailTaskRequest& request);

 private:
  struct JobEntry {
    retrain::v1::Job job;
    // What the job's kind keeps between its phases; empty for kinds that
    // keep nothing.
    retrain::v1::BuildPlan plan;
    uint64_t version = 1;
    std::vector<int64_t> task_ids;  // the current phase's tasks
    // What the current phase's DONE tasks add to the job's progress, and its
    // tasks' units in all: kept as tasks finish, so that a lease or a result
    // costs the job's running tasks, not all of its tasks. Counted afresh
    // (RecountDone) whenever `done_counted` is false: tasks added or
    // dropped, or a DONE task queued again.
    struct DoneTally {
      int64_t units = 0, bytes = 0, found = 0, skipped = 0, total_units = 0;
      int32_t tasks = 0;
    } done;
    bool done_counted = false;
    // Recent (time in ms, done) samples for the rate estimate.
    std::deque<std::pair<int64_t, int64_t>> samples;
    // Notified (with mu_) when version changes: wakes this job's watchers
    // only. Shared so that a waiter holds it whatever happens to the entry.
    std::shared_ptr<CondVar> changed = std::make_shared<CondVar>();
  };
  // How many of a lease's trainer log lines and points the job has: a
  // report sent again skips those (ReportProgressRequest.log_lines_before).
  struct TrainerOutputTaken {
    int64_t lines = 0;
    int64_t points = 0;
  };
  struct TaskProgress {
    int64_t done = 0;
    int64_t bytes = 0;
    TrainerOutputTaken taken;
  };

  // The engine as job kinds see it (callers hold mu_).
  class KindHost;
  friend class KindHost;

  Coordinator(CoordinatorOptions options, DataRoots roots, std::unique_ptr<Store> store);
  absl::Status Load();
  void TickLoop();
  void PlannerLoop();

  // Admission and placement (coordinator_placement.cc).
  // Admits a new job with its first tasks and plan: the request id's
  // earlier job if there is one, else the job QUEUED with `reason`,
  // persisted, and its kind's first step scheduled if it wants one.
  // `validate_only` checks and returns the job without creating it. Takes
  // mu_.
  absl::StatusOr<retrain::v1::Job> AdmitJob(PlannedJob planned, const std::string& request_id,
                                            bool validate_only) ABSL_LOCKS_EXCLUDED(mu_);
  // A job a kind planned (or the kind's refusal), admitted with the
  // request's priority and ids. Takes mu_.
  template <typename Request>
  absl::StatusOr<retrain::v1::Job> AdmitPlanned(absl::StatusOr<PlannedJob> planned,
                                                const Request& request,
                                                const std::string& submitter)
      ABSL_LOCKS_EXCLUDED(mu_) {
    if (!planned.ok()) return planned.status();
    planned->job.set_submitter(submitter);
    planned->job.set_priority(RequestPriority(request));
    return AdmitJob(*std::move(planned), request.request_id(), request.validate_only());
  }
  // Dataset builds have no priority: they are listed and written in turn.
  static int32_t RequestPriority(const retrain::v1::SubmitDatasetBuildRequest&) { return 0; }
  template <typename Request>
  static int32_t RequestPriority(const Request& request) {
    return request.priority();
  }
  // Callers hold mu_ from here on, unless said otherwise.
  absl::Status CheckSomeWorkerCouldHost(const retrain::v1::TrainTask& task) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // RESOURCE_EXHAUSTED when `submitter` has max_pending_jobs_per_client
  // unfinished jobs already.
  absl::Status CheckPendingQuota(const std::string& submitter) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `worker` may take `task` now; `worker_is_reserved`: a pending
  // part of a job over several workers is placed on it.
  bool CanLease(const retrain::v1::TaskRecord& task, const retrain::v1::Worker& worker,
                bool worker_is_reserved) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The workers that hold a lease on a task other than a request's check
  // (which runs beside a worker's task and does not count as one).
  std::set<std::string> WorkersRunningATask() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the worker is among them.
  bool RunsATask(const std::string& worker_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateQueuedReasons() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Places jobs that span several workers when enough are free.
  void PlaceGangs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A part of such a job failed or was lost: stop and re-place every part.
  void RequeueGang(JobEntry& entry, const retrain::v1::TaskRecord& cause, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends a report's log lines and training points to the job's log and
  // series in the store, but those its lease's earlier reports brought
  // (`taken`, which it then counts in) (coordinator_trainer_output.cc).
  void AppendTrainerOutput(const std::string& job_id,
                           const retrain::v1::ReportProgressRequest& report,
                           TrainerOutputTaken* taken) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // For GetJobLogs and GetJobMetrics, read before the log or series (then
  // all of it is in the store): whether the job has ended and none of its
  // trainers may still report (a cancelled job's trainer writes its
  // checkpoint and says so as it stops: its lease stays open for that until
  // its worker no longer lists it, or a lease timeout), after checking
  // `offset`. Takes mu_.
  absl::StatusOr<bool> OutputComplete(const std::string& job_id, int64_t offset) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Helpers.
  JobEntry* FindJob(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job, from memory or, once forgotten, from the database; NotFound
  // naming job_id.
  absl::StatusOr<retrain::v1::Job> LookupJob(const std::string& job_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job submitted with `request_id`, from memory or, once forgotten,
  // from the database; "" when there is none.
  absl::StatusOr<std::string> JobIdForRequest(const std::string& request_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the oldest finished jobs from memory beyond
  // max_finished_jobs_in_memory (they stay in the database). Only where no
  // caller holds a JobEntry reference: Tick() and Load().
  void ForgetOldFinishedJobs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Touch(JobEntry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddEvent(JobEntry& entry, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetState(JobEntry& entry, retrain::v1::JobState state, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the job (FAILED or CANCELLED or SUCCEEDED), revokes its leases and
  // forgets its tasks. Persists.
  void EndJob(JobEntry& entry, retrain::v1::JobState state, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecomputeProgress(JobEntry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool PhaseComplete(JobEntry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts entry.done from its tasks.
  void RecountDone(JobEntry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<retrain::v1::TaskRecord*> FindLease(const std::string& worker_id, int64_t task_id,
                                                     int64_t lease_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RequeueOrFail(retrain::v1::TaskRecord& task, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Persist(StoreBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddTasks(JobEntry& entry, std::vector<retrain::v1::Task> tasks, StoreBatch& batch,
                std::vector<retrain::v1::TaskRecord*>& keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnqueuePlanner(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues the job for its kind's next step off the lock when the kind
  // wants one (JobKind::WantsStep).
  void ScheduleStepIfWanted(JobEntry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NewJobId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t Now() const;  // wall-clock ms

  // Constant after construction.
  const CoordinatorOptions options_;
  const DataRoots roots_;
  Clock* const clock_;

  mutable Mutex mu_;
  std::unique_ptr<Store> store_ ABSL_GUARDED_BY(mu_);
  // The same store, for Store::ReadJobLog and ReadTrainingPoints only,
  // which need no lock.
  Store* const log_reader_;
  std::map<std::string, JobEntry, JobIdOrder> jobs_ ABSL_GUARDED_BY(mu_);
  // Finished jobs in memory, by sequence; finished jobs only in the
  // database (forgotten, or never loaded at start), by (type, state), and
  // the newest of them (-1: none).
  std::set<std::pair<int64_t, std::string>> finished_in_memory_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<retrain::v1::JobType, retrain::v1::JobState>, int64_t> forgotten_jobs_
      ABSL_GUARDED_BY(mu_);
  int64_t newest_forgotten_seq_ ABSL_GUARDED_BY(mu_) = -1;
  // request_id -> job id, of the jobs in memory.
  std::map<std::string, std::string> request_ids_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, retrain::v1::TaskRecord> tasks_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, TaskProgress> task_progress_ ABSL_GUARDED_BY(mu_);
  std::set<int64_t> pending_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, int64_t> lease_to_task_ ABSL_GUARDED_BY(mu_);
  // The leases of tasks whose job ended while they ran (cancelled, or failed
  // by another part), by lease id: what the task logs while its worker stops
  // it (a trainer's last checkpoint) still reaches the job's log. Each report
  // keeps one a lease timeout longer, as it would a live lease.
  struct EndedLease {
    std::string job_id;
    std::string worker_id;
    int64_t deadline_ms = 0;
    TrainerOutputTaken taken;
  };
  std::map<int64_t, EndedLease> ended_leases_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, retrain::v1::Worker> workers_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> planner_queue_ ABSL_GUARDED_BY(mu_);
  int64_t next_job_seq_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_task_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_lease_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_worker_seq_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  CoordinatorCounters counters_ ABSL_GUARDED_BY(mu_);
  CondVar task_available_;
  CondVar planner_wake_;
  CondVar tick_wake_;

  std::thread tick_thread_;
  std::thread planner_thread_;
};

}  // namespace retrain::server
