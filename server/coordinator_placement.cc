// The engine's admission and placement: request ids and quotas, whether a
// job needing whole workers (training, evaluation) could ever run, leases
// by resource, jobs over several workers placed together, the reasons a
// queued job waits.
#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>

#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/job_states.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/coordinator.h"
#include "server/jobs/training.h"

namespace retrain::server {

namespace v1 = retrain::v1;
using google::protobuf::util::TimeUtil;

namespace {

// A rendezvous port for a job's rank 0, drawn afresh for each placement in
// [29600, 49600): jobs of coordinators that share a host (whose job ids
// repeat: every state directory starts at j-000001) rarely meet on one port,
// and a placement that does fails to bind and is placed again.
int32_t RendezvousPort() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return 29600 + static_cast<int32_t>(rng() % 20000);
}

}  // namespace

absl::Status Coordinator::CheckSomeWorkerCouldHost(const v1::TrainTask& task) const {
  // Judged against the workers known now; with none registered the job waits.
  bool any = false;
  int64_t largest_memory = 0, largest_gpu = 0;
  int32_t most_cores = 0, most_gpus = 0;
  for (const auto& [id, w] : workers_) {
    if (w.state() == v1::WORKER_STATE_LOST) continue;
    any = true;
    if (WorkerCanHost(w, task, /*free_now=*/false)) return absl::OkStatus();
    largest_memory = std::max(largest_memory, w.resources().memory_bytes());
    most_cores = std::max(most_cores, w.resources().cpu_cores());
    most_gpus = std::max(most_gpus, w.resources().gpus_size());
    for (const auto& g : w.resources().gpus())
      largest_gpu = std::max(largest_gpu, g.memory_bytes());
  }
  if (!any) return absl::OkStatus();
  if (task.gpus() > 0 && most_gpus >= task.gpus() && largest_gpu < task.gpu_memory_bytes()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the job needs ", DescribeNeed(task), " (", task.spec().model(), " at ",
        ExamplesPerRank(task.spec()), " examples per GPU); the largest GPU has ", GiB(largest_gpu),
        ": lower spec.batch_size, raise spec.num_gpus (the batch is split among them) or use "
        "spec.precision bf16"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the job needs ", DescribeNeed(task), "; the largest worker has ", most_cores, " cores, ",
      most_gpus, " GPU(s) and ", GiB(largest_memory),
      ": lower spec.input_queue_memory_factor or spec.batch_size (the shuffle buffer and "
      "batches take the memory) or spec.num_replicas / spec.num_gpus"));
}

absl::Status Coordinator::CheckPendingQuota(const std::string& submitter) const {
  int pending = 0;
  for (const auto& [id, entry] : jobs_) {
    pending += !IsFinalState(entry.job.state()) && entry.job.submitter() == submitter;
  }
  if (pending < options_.max_pending_jobs_per_client) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      submitter.empty() ? std::string("this client") : submitter, " has ", pending,
      " unfinished jobs (queued or running), the most the coordinator takes from one client "
      "(--max_pending_jobs_per_client): wait for some to end, or cancel some"));
}

absl::StatusOr<v1::Job> Coordinator::AdmitJob(PlannedJob planned, const std::string& request_id,
                                              bool validate_only) {
  v1::Job& job = planned.job;
  std::vector<v1::Task>& tasks = planned.tasks;
  job.set_state(v1::JOB_STATE_QUEUED);
  job.set_request_id(request_id);
  *job.mutable_create_time() = TimeUtil::MillisecondsToTimestamp(Now());
  *job.mutable_update_time() = job.create_time();
  job.mutable_progress()->set_phase("queued");
  if (validate_only) return job;
  MutexLock lock(&mu_);
  if (!request_id.empty()) {
    ASSIGN_OR_RETURN(const std::string existing_id, JobIdForRequest(request_id));
    if (!existing_id.empty()) {
      ASSIGN_OR_RETURN(const v1::Job existing, LookupJob(existing_id));
      using google::protobuf::util::MessageDifferencer;
      const bool same = MessageDifferencer::Equals(existing.dataset_build(), job.dataset_build()) &&
                        MessageDifferencer::Equals(existing.training(), job.training()) &&
                        MessageDifferencer::Equals(existing.evaluation(), job.evaluation()) &&
                        MessageDifferencer::Equals(existing.dataset_verify(), job.dataset_verify());
      if (!same) {
        return absl::AlreadyExistsError(absl::StrCat("request_id: '", request_id,
                                                     "' was used for job ", existing.id(),
                                                     " with a different request"));
      }
      return existing;
    }
  }
  RETURN_IF_ERROR(CheckPendingQuota(job.submitter()));
  job.set_id(NewJobId());
  if (!request_id.empty()) request_ids_[request_id] = job.id();
  JobEntry& entry = jobs_[job.id()];
  entry.job = std::move(job);
  entry.plan = std::move(planned.plan);
  SetState(entry, v1::JOB_STATE_QUEUED, planned.reason);
  StoreBatch batch;
  std::vector<v1::TaskRecord*> keep;
  AddTasks(entry, std::move(tasks), batch, keep);
  batch.jobs.push_back(&entry.job);
  if (entry.plan.ByteSizeLong() > 0) batch.plans.emplace_back(entry.job.id(), &entry.plan);
  Persist(batch);
  ScheduleStepIfWanted(entry);
  return entry.job;
}

bool Coordinator::CanLease(const v1::TaskRecord& t, const v1::Worker& w,
                           bool worker_is_reserved) const {
  // A request's check reads a few files: any worker, beside any task.
  if (IsRequestCheck(t.task())) return true;
  // A worker placed for a part of a job over several workers waits for it.
  if (worker_is_reserved && t.reserved_worker_id() != w.id()) return false;
  if (!t.task().has_train()) return true;
  // The parts of a job over several workers go where PlaceGangs put them.
  if (t.task().train().nnodes() > 1) return t.reserved_worker_id() == w.id();
  // One trainer per worker at a time: it takes the worker's cores.
  if (RunsATask(w.id())) return false;
  return WorkerCanHost(w, t.task().train(), /*free_now=*/true);
}

namespace {
// Whether a leased task keeps its worker busy: a request's check runs beside
// a worker's task and does not.
bool OccupiesItsWorker(const v1::TaskRecord& leased) { return !IsRequestCheck(leased.task()); }
}  // namespace

std::set<std::string> Coordinator::WorkersRunningATask() const {
  std::set<std::string> running;
  for (const auto& [lease, task_id] : lease_to_task_) {
    const v1::TaskRecord& t = tasks_.at(task_id);
    if (OccupiesItsWorker(t)) running.insert(t.worker_id());
  }
  return running;
}

bool Coordinator::RunsATask(const std::string& worker_id) const {
  for (const auto& [lease, task_id] : lease_to_task_) {
    const v1::TaskRecord& t = tasks_.at(task_id);
    if (t.worker_id() == worker_id && OccupiesItsWorker(t)) return true;
  }
  return false;
}

void Coordinator::PlaceGangs() {
  // Jobs over several workers, by priority then age: all parts placed on
  // free workers at once, or none.
  std::vector<JobEntry*> waiting;
  for (auto& [id, entry] : jobs_) {
    if (entry.job.state() == v1::JOB_STATE_QUEUED || entry.job.state() == v1::JOB_STATE_RUNNING) {
      if (entry.task_ids.size() > 1) waiting.push_back(&entry);
    }
  }
  std::sort(waiting.begin(), waiting.end(), [](const JobEntry* a, const JobEntry* b) {
    return std::make_pair(-a->job.priority(), a->job.id()) <
           std::make_pair(-b->job.priority(), b->job.id());
  });
  std::set<std::string> taken = WorkersRunningATask();
  for (const auto& [id, t] : tasks_) {
    if (!t.reserved_worker_id().empty()) taken.insert(t.reserved_worker_id());
  }
  for (JobEntry* entry : waiting) {
    // A placement whose worker went away before taking its part is undone.
    bool stale = false;
    for (int64_t id : entry->task_ids) {
      const v1::TaskRecord& t = tasks_.at(id);
      if (t.state() != v1::TASK_STATE_PENDING || t.reserved_worker_id().empty()) continue;
      auto w = workers_.find(t.reserved_worker_id());
      stale = stale || w == workers_.end() || w->second.state() == v1::WORKER_STATE_LOST;
    }
    if (stale) {
      // Parts already running wait for a peer that will not come: every
      // part stops and the job is placed again.
      const v1::TaskRecord* cause = nullptr;
      for (int64_t id : entry->task_ids) {
        const v1::TaskRecord& t = tasks_.at(id);
        taken.erase(t.reserved_worker_id());
        if (t.state() == v1::TASK_STATE_PENDING && cause == nullptr) cause = &t;
      }
      RequeueGang(*entry, *cause, "a worker it was placed on went away before starting its part");
    }
    std::vector<v1::TaskRecord*> parts;
    bool all_pending = true;
    for (int64_t id : entry->task_ids) {
      v1::TaskRecord& t = tasks_.at(id);
      all_pending = all_pending && t.state() == v1::TASK_STATE_PENDING &&
                    t.reserved_worker_id().empty() && t.task().has_train();
      parts.push_back(&t);
    }
    if (!all_pending) continue;
    std::vector<const v1::Worker*> chosen;
    const int64_t now = Now();
    for (const auto& [wid, w] : workers_) {
      if (chosen.size() == parts.size()) break;
      if (w.state() == v1::WORKER_STATE_LOST || taken.count(wid)) continue;
      // Only workers heard from lately: a dead one is not LOST at once.
      if (now - TimeUtil::TimestampToMilliseconds(w.last_heartbeat()) >
          std::max(2 * options_.heartbeat_interval_ms, options_.lease_timeout_ms / 2)) {
        continue;
      }
      if (WorkerCanHost(w, parts[0]->task().train(), /*free_now=*/true)) chosen.push_back(&w);
    }
    if (chosen.size() < parts.size()) continue;
    const int32_t port = RendezvousPort();
    StoreBatch batch;
    for (v1::TaskRecord* t : parts) {
      const v1::Worker& w = *chosen[t->task().train().node_rank()];
      t->set_reserved_worker_id(w.id());
      t->mutable_task()->mutable_train()->set_master_addr(chosen[0]->hostname());
      t->mutable_task()->mutable_train()->set_master_port(port);
      taken.insert(w.id());
      batch.tasks.push_back(t);
    }
    AddEvent(*entry, absl::StrCat("placed on ", parts.size(), " workers; rank 0 on ",
                                  chosen[0]->id(), " (", chosen[0]->hostname(), ":", port, ")"));
    Persist(batch);
    task_available_.NotifyAll();
  }
}

void Coordinator::RequeueGang(JobEntry& entry, const v1::TaskRecord& cause,
                              const std::string& why) {
  // The other parts cannot go on without this one: their leases end (their
  // workers stop the trainers) and the whole job is placed again.
  StoreBatch batch;
  for (int64_t id : entry.task_ids) {
    v1::TaskRecord& t = tasks_.at(id);
    t.set_reserved_worker_id("");
    batch.tasks.push_back(&t);
    if (id == cause.id() || t.state() == v1::TASK_STATE_PENDING) continue;
    if (t.state() == v1::TASK_STATE_LEASED) lease_to_task_.erase(t.lease_id());
    task_progress_.erase(id);
    t.clear_result();
    t.set_state(v1::TASK_STATE_PENDING);
    t.set_worker_id("");
    pending_.insert(id);
  }
  entry.done_counted = false;  // parts that had finished run again
  AddEvent(entry, absl::StrCat("every part of the job stops and is placed again: ", why));
  Persist(batch);
}

void Coordinator::UpdateQueuedReasons() {
  for (auto& [id, entry] : jobs_) {
    if (entry.job.state() != v1::JOB_STATE_QUEUED || entry.task_ids.empty()) continue;
    const v1::TaskRecord& t = tasks_.at(entry.task_ids.front());
    std::string reason;
    if (!t.reserved_worker_id().empty()) {
      reason = absl::StrCat("starting on ", entry.task_ids.size(), " workers");
    } else if (IsRequestCheck(t.task())) {
      reason = t.state() == v1::TASK_STATE_LEASED
                   ? "queued: a worker is checking the request"
                   : "queued: waiting for a worker to check the request";
    } else if (!t.task().has_train()) {
      reason = "queued: waiting for a free worker";
    } else {
      int live = 0, fitting = 0;
      for (const auto& [wid, w] : workers_) {
        if (w.state() == v1::WORKER_STATE_LOST) continue;
        ++live;
        fitting += WorkerCanHost(w, t.task().train(), /*free_now=*/false) ? 1 : 0;
      }
      const int needed = std::max(1, t.task().train().nnodes());
      reason = live == 0 ? "queued: no worker registered"
               : fitting < needed
                   ? absl::StrCat("queued: needs ", DescribeNeed(t.task().train()), "; ", fitting,
                                  " registered worker(s) have that")
                   : absl::StrCat("queued: needs ", DescribeNeed(t.task().train()), "; the ",
                                  fitting, " worker(s) that have it are busy");
    }
    if (entry.job.progress().phase() != reason) {
      entry.job.mutable_progress()->set_phase(reason);
      AddEvent(entry, reason);
    }
  }
}

}  // namespace retrain::server
