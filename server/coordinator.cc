#include "server/coordinator.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <limits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/job_states.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/jobs/dataset_build.h"
#include "server/jobs/dataset_verify.h"
#include "server/jobs/training.h"
#include "server/sqlite_store.h"

namespace retrain::server {

namespace v1 = retrain::v1;
using google::protobuf::util::TimeUtil;

namespace {

// Whether `result` is of the kind of `task`: the fields of the two oneofs
// share their names (TaskKind()).
bool ResultMatchesTask(const v1::Task& task, const v1::TaskResult& result) {
  const auto* r = v1::TaskResult::descriptor()->FindFieldByNumber(result.kind_case());
  return r != nullptr && r->name() == TaskKind(task);
}

}  // namespace

// The engine as a job kind sees it: the kind is called with mu_ held.
class Coordinator::KindHost : public JobEngine {
 public:
  explicit KindHost(Coordinator& c) : c_(c) {}
  std::vector<const v1::TaskRecord*> TasksOf(const v1::Job& job) const override {
    c_.mu_.AssertHeld();
    std::vector<const v1::TaskRecord*> out;
    for (int64_t id : c_.FindJob(job.id())->task_ids) out.push_back(&c_.tasks_.at(id));
    return out;
  }
  bool AllTasksDone(const v1::Job& job) const override {
    c_.mu_.AssertHeld();
    return c_.PhaseComplete(*c_.FindJob(job.id()));
  }
  void AddEvent(v1::Job& job, const std::string& reason) override {
    c_.mu_.AssertHeld();
    c_.AddEvent(*c_.FindJob(job.id()), reason);
  }
  void EndJob(v1::Job& job, v1::JobState state, const std::string& reason) override {
    c_.mu_.AssertHeld();
    c_.EndJob(*c_.FindJob(job.id()), state, reason);
  }
  void ReplaceTasks(v1::Job& job, std::vector<v1::Task> tasks,
                    const std::string& reason) override {
    c_.mu_.AssertHeld();
    JobEntry& entry = *c_.FindJob(job.id());
    StoreBatch batch;
    for (int64_t id : entry.task_ids) {
      batch.drop_tasks.push_back(id);
      c_.tasks_.erase(id);
    }
    std::vector<v1::TaskRecord*> keep;
    c_.AddTasks(entry, std::move(tasks), batch, keep);
    c_.AddEvent(entry, reason);
    c_.RecomputeProgress(entry);
    batch.jobs.push_back(&entry.job);
    if (entry.plan.ByteSizeLong() > 0) batch.plans.emplace_back(entry.job.id(), &entry.plan);
    c_.Persist(batch);
    c_.ScheduleStepIfWanted(entry);
  }
  v1::BuildPlan& PlanOf(const v1::Job& job) override {
    c_.mu_.AssertHeld();
    return c_.FindJob(job.id())->plan;
  }
  void Save(v1::Job& job) override {
    c_.mu_.AssertHeld();
    JobEntry& entry = *c_.FindJob(job.id());
    c_.RecomputeProgress(entry);
    c_.Touch(entry);
    StoreBatch batch;
    batch.jobs.push_back(&entry.job);
    if (entry.plan.ByteSizeLong() > 0) batch.plans.emplace_back(entry.job.id(), &entry.plan);
    c_.Persist(batch);
  }
  void SetRunning(v1::Job& job, std::vector<v1::Task> tasks, const std::string& reason) override {
    c_.mu_.AssertHeld();
    JobEntry& entry = *c_.FindJob(job.id());
    StoreBatch batch;
    std::vector<v1::TaskRecord*> added;
    c_.AddTasks(entry, std::move(tasks), batch, added);
    c_.SetState(entry, v1::JOB_STATE_RUNNING, reason);
    c_.RecomputeProgress(entry);
    batch.jobs.push_back(&entry.job);
    if (entry.plan.ByteSizeLong() > 0) batch.plans.emplace_back(entry.job.id(), &entry.plan);
    c_.Persist(batch);
    c_.ScheduleStepIfWanted(entry);
  }
  void RedoTask(v1::Job& job, int64_t task_id, const std::string& reason) override {
    c_.mu_.AssertHeld();
    JobEntry& entry = *c_.FindJob(job.id());
    v1::TaskRecord& t = c_.tasks_.at(task_id);
    t.set_state(v1::TASK_STATE_PENDING);
    t.clear_result();
    entry.done_counted = false;
    c_.pending_.insert(task_id);
    c_.AddEvent(entry, reason);
    StoreBatch batch;
    batch.tasks.push_back(&t);
    batch.jobs.push_back(&entry.job);
    c_.Persist(batch);
    c_.task_available_.NotifyAll();
  }
  void ScheduleStep(const v1::Job& job) override {
    c_.mu_.AssertHeld();
    c_.ScheduleStepIfWanted(*c_.FindJob(job.id()));
  }
  absl::Status CheckSomeWorkerCouldHost(const v1::TrainTask& task) const override {
    c_.mu_.AssertHeld();
    return c_.CheckSomeWorkerCouldHost(task);
  }

 private:
  Coordinator& c_;
};

Coordinator::Coordinator(CoordinatorOptions options, DataRoots roots,
                         std::unique_ptr<Store> store)
    : options_(std::move(options)),
      roots_(std::move(roots)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      store_(std::move(store)),
      log_reader_(store_.get()) {}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(CoordinatorOptions options,
                                                                 std::unique_ptr<Store> store) {
  ASSIGN_OR_RETURN(DataRoots roots, DataRoots::Create(options.data_roots));
  if (store == nullptr) {
    ASSIGN_OR_RETURN(store, SqliteStore::Open(options.state_dir));
  }
  std::unique_ptr<Coordinator> c(
      new Coordinator(std::move(options), std::move(roots), std::move(store)));
  RETURN_IF_ERROR(c->Load());
  if (c->options_.tick_interval_ms > 0) {
    c->tick_thread_ = std::thread([p = c.get()] { p->TickLoop(); });
  }
  c->planner_thread_ = std::thread([p = c.get()] { p->PlannerLoop(); });
  return c;
}

Coordinator::~Coordinator() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, entry] : jobs_) entry.changed->NotifyAll();  // watchers
  }
  tick_wake_.NotifyAll();
  planner_wake_.NotifyAll();
  task_available_.NotifyAll();
  if (tick_thread_.joinable()) tick_thread_.join();
  if (planner_thread_.joinable()) planner_thread_.join();
}

int64_t Coordinator::Now() const { return clock_->NowMs(); }

absl::StatusOr<v1::Job> Coordinator::SubmitDatasetBuild(const v1::SubmitDatasetBuildRequest& req,
                                                        const std::string& submitter) {
  return AdmitPlanned(PlanDatasetBuild(req.spec(), roots_), req, submitter);
}

absl::StatusOr<v1::Job> Coordinator::SubmitTraining(const v1::SubmitTrainingRequest& req,
                                                    const std::string& submitter) {
  return AdmitPlanned(PlanTraining(req, roots_), req, submitter);
}

absl::StatusOr<v1::Job> Coordinator::SubmitEvaluation(const v1::SubmitEvaluationRequest& req,
                                                      const std::string& submitter) {
  return AdmitPlanned(PlanEvaluation(req, roots_), req, submitter);
}

absl::StatusOr<v1::Job> Coordinator::SubmitDatasetVerify(const v1::SubmitDatasetVerifyRequest& req,
                                                         const std::string& submitter) {
  return AdmitPlanned(PlanDatasetVerify(req.spec(), roots_), req, submitter);
}

absl::Status Coordinator::Load() {
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(StoreContents contents,
                   store_->LoadState(std::max(0, options_.max_finished_jobs_in_memory)));
  auto counter = [&](const char* name) {
    auto it = contents.counters.find(name);
    return it == contents.counters.end() ? int64_t{1} : it->second;
  };
  next_job_seq_ = counter("next_job_seq");
  next_task_id_ = counter("next_task_id");
  next_lease_id_ = counter("next_lease_id");
  next_worker_seq_ = counter("next_worker_seq");
  for (auto& job : contents.jobs) {
    const std::string id = job.id();
    if (!job.request_id().empty()) request_ids_[job.request_id()] = id;
    jobs_[id].job = std::move(job);
  }
  forgotten_jobs_ = std::move(contents.finished_not_loaded);
  newest_forgotten_seq_ = contents.newest_not_loaded_seq;
  int64_t not_loaded = 0;
  for (const auto& [key, n] : forgotten_jobs_) not_loaded += n;
  for (auto& [id, plan] : contents.plans) {
    if (auto* e = FindJob(id)) e->plan = std::move(plan);
  }
  // Leases survive a restart; their holders get two lease times to
  // reconnect and report (their retries back off while the server is down).
  const int64_t grace = Now() + 2 * static_cast<int64_t>(options_.lease_timeout_ms);
  for (auto& task : contents.tasks) {
    JobEntry* entry = FindJob(task.job_id());
    if (entry == nullptr || IsFinalState(entry->job.state())) continue;
    entry->task_ids.push_back(task.id());
    if (task.state() == v1::TASK_STATE_PENDING) pending_.insert(task.id());
    if (task.state() == v1::TASK_STATE_LEASED) {
      task.set_lease_deadline_ms(std::max(task.lease_deadline_ms(), grace));
      lease_to_task_[task.lease_id()] = task.id();
    }
    tasks_[task.id()] = std::move(task);
  }
  for (auto& worker : contents.workers) {
    // Silent workers get the same grace before they count as lost.
    *worker.mutable_last_heartbeat() = TimeUtil::MillisecondsToTimestamp(Now());
    workers_[worker.id()] = std::move(worker);
  }
  int resumed = 0;
  for (auto& [id, entry] : jobs_) {
    if (IsFinalState(entry.job.state())) {
      finished_in_memory_.emplace(JobSequence(id), id);
      continue;
    }
    ++resumed;
    RecomputeProgress(entry);
    ScheduleStepIfWanted(entry);
  }
  const int64_t total = static_cast<int64_t>(jobs_.size()) + not_loaded;
  // LoadState() kept at most the bound; jobs resumed above (their kinds'
  // steps) may have finished since.
  ForgetOldFinishedJobs();
  Logger("server")->info(
      "state loaded from {}: {} jobs ({} active, {} finished kept in memory), {} tasks, {} workers",
      store_->Describe(), total, resumed, finished_in_memory_.size(), tasks_.size(),
      workers_.size());
  return absl::OkStatus();
}

// --- helpers (mu_ held) ---

absl::StatusOr<v1::Job> Coordinator::LookupJob(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  if (it != jobs_.end()) return it->second.job;
  if (newest_forgotten_seq_ < 0 || JobSequence(job_id) < 0) {
    return absl::NotFoundError(absl::StrCat("job_id: no job '", job_id, "'"));
  }
  return store_->LoadJob(job_id);
}

absl::StatusOr<std::string> Coordinator::JobIdForRequest(const std::string& request_id) const {
  auto it = request_ids_.find(request_id);
  if (it != request_ids_.end()) return it->second;
  if (newest_forgotten_seq_ < 0) return std::string();
  return store_->FindJobIdByRequestId(request_id);
}

void Coordinator::ForgetOldFinishedJobs() {
  const size_t keep = static_cast<size_t>(std::max(0, options_.max_finished_jobs_in_memory));
  while (finished_in_memory_.size() > keep) {
    const auto [seq, id] = *finished_in_memory_.begin();
    finished_in_memory_.erase(finished_in_memory_.begin());
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    ++forgotten_jobs_[{it->second.job.type(), it->second.job.state()}];
    request_ids_.erase(it->second.job.request_id());
    newest_forgotten_seq_ = std::max(newest_forgotten_seq_, seq);
    it->second.changed->NotifyAll();  // its watchers read it from the database
    jobs_.erase(it);
  }
}

Coordinator::JobEntry* Coordinator::FindJob(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

std::string Coordinator::NewJobId() { return absl::StrFormat("j-%06d", next_job_seq_++); }

void Coordinator::Touch(JobEntry& entry) {
  ++entry.version;
  *entry.job.mutable_update_time() = TimeUtil::MillisecondsToTimestamp(Now());
  entry.changed->NotifyAll();
}

void Coordinator::AddEvent(JobEntry& entry, const std::string& reason) {
  auto* ev = entry.job.add_history();
  *ev->mutable_time() = TimeUtil::MillisecondsToTimestamp(Now());
  ev->set_state(entry.job.state());
  ev->set_reason(reason);
  Logger("server")->info("job {}: {}", entry.job.id(), reason);
  Touch(entry);
}

void Coordinator::SetState(JobEntry& entry, v1::JobState state, const std::string& reason) {
  if (entry.job.state() == v1::JOB_STATE_QUEUED && state == v1::JOB_STATE_RUNNING) {
    counters_.queue_wait_seconds_sum +=
        std::max<int64_t>(0, Now() - TimeUtil::TimestampToMilliseconds(entry.job.create_time())) /
        1000.0;
    ++counters_.queue_wait_count;
  }
  entry.job.set_state(state);
  if (IsFinalState(state)) {
    *entry.job.mutable_end_time() = TimeUtil::MillisecondsToTimestamp(Now());
    finished_in_memory_.emplace(JobSequence(entry.job.id()), entry.job.id());
  }
  AddEvent(entry, absl::StrCat(StateName(state), ": ", reason));
}

void Coordinator::Persist(StoreBatch& batch) {
  batch.counters = {{"next_job_seq", next_job_seq_},
                    {"next_task_id", next_task_id_},
                    {"next_lease_id", next_lease_id_},
                    {"next_worker_seq", next_worker_seq_}};
  absl::Status s = store_->Commit(batch);
  if (!s.ok()) {
    // The in-memory state is ahead of the database; going on would make
    // promises the database cannot keep.
    Logger("server")->critical("cannot write the state database: {}", s.ToString());
    if (options_.on_store_failure) options_.on_store_failure(s);
    std::abort();
  }
}

void Coordinator::EndJob(JobEntry& entry, v1::JobState state, const std::string& reason) {
  for (int64_t id : entry.task_ids) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) continue;
    pending_.erase(id);
    if (lease_to_task_.erase(it->second.lease_id()) > 0) {
      auto progress = task_progress_.find(id);
      ended_leases_[it->second.lease_id()] = {
          entry.job.id(), it->second.worker_id(), Now() + options_.lease_timeout_ms,
          progress != task_progress_.end() ? progress->second.taken : TrainerOutputTaken()};
    }
    task_progress_.erase(id);
    tasks_.erase(it);
  }
  entry.task_ids.clear();
  entry.done_counted = false;
  if (const JobKind* kind = FindJobKind(entry.job.type())) kind->JobEnded(entry.job, state);
  if (state == v1::JOB_STATE_FAILED) entry.job.set_error(reason);
  SetState(entry, state, reason);
  StoreBatch batch;
  batch.jobs.push_back(&entry.job);
  batch.drop_tasks_of_jobs.push_back(entry.job.id());
  Persist(batch);
}

bool Coordinator::PhaseComplete(JobEntry& entry) {
  if (!entry.done_counted) RecountDone(entry);
  return entry.done.tasks == static_cast<int32_t>(entry.task_ids.size());
}

namespace {

// Adds what a DONE task counts for in its job's progress.
void CountDone(const JobKind* kind, const v1::TaskRecord& t, int64_t* units, int64_t* bytes,
               int64_t* found, int64_t* skipped) {
  if (kind == nullptr) return;
  *units += kind->TaskUnits(t.task());
  *bytes += kind->TaskBytes(t.result());
  *found += kind->TaskFound(t.result());
  *skipped += kind->TaskSkipped(t.result());
}

}  // namespace

void Coordinator::RecountDone(JobEntry& entry) {
  const JobKind* kind = FindJobKind(entry.job.type());
  JobEntry::DoneTally& d = entry.done;
  d = {};
  for (int64_t id : entry.task_ids) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) continue;
    if (kind != nullptr) d.total_units += kind->TaskUnits(it->second.task());
    if (it->second.state() != v1::TASK_STATE_DONE) continue;
    ++d.tasks;
    CountDone(kind, it->second, &d.units, &d.bytes, &d.found, &d.skipped);
  }
  entry.done_counted = true;
}

void Coordinator::RecomputeProgress(JobEntry& entry) {
  // Some kinds' tasks report the job's progress themselves (the trainer's).
  const JobKind* kind = FindJobKind(entry.job.type());
  if (kind == nullptr || !kind->ProgressFromTasks()) return;
  auto* p = entry.job.mutable_progress();
  if (!entry.done_counted) RecountDone(entry);
  const JobEntry::DoneTally& tally = entry.done;
  int64_t done = tally.units, bytes = tally.bytes;
  const int64_t total = tally.total_units, found = tally.found;
  // Files left out in earlier phases, then by this phase's finished tasks.
  const int64_t skipped =
      std::max<int64_t>(entry.plan.num_skipped(), entry.plan.skipped_size()) + tally.skipped;
  const int32_t tasks_done = tally.tasks;
  // The running tasks, from the leases (a few, whatever the job's size).
  int32_t tasks_running = 0;
  for (const auto& [lease, id] : lease_to_task_) {
    const v1::TaskRecord& t = tasks_.at(id);
    if (t.job_id() != entry.job.id()) continue;
    ++tasks_running;
    auto pit = task_progress_.find(id);
    if (pit != task_progress_.end()) {
      done += std::min(pit->second.done, kind->TaskUnits(t.task()));
      bytes += pit->second.bytes;
    }
  }
  if (entry.job.state() == v1::JOB_STATE_QUEUED) {
    p->set_phase("queued");
  } else {
    const v1::Task* first =
        entry.task_ids.empty() ? nullptr : &tasks_.at(entry.task_ids.front()).task();
    if (std::string phase = kind->RunningPhase(entry.plan, first); !phase.empty()) {
      p->set_phase(std::move(phase));
    }
  }
  p->set_unit(kind->ProgressUnit(entry.plan));
  if (p->done() > done || p->total() != total) entry.samples.clear();
  p->set_done(done);
  p->set_total(total);
  p->set_bytes_done(bytes);
  p->set_skipped(skipped);
  p->set_found(found);
  p->set_tasks_done(tasks_done);
  p->set_tasks_running(tasks_running);
  p->set_tasks_total(static_cast<int32_t>(entry.task_ids.size()));
  // Rate over the last ~10 seconds.
  const int64_t now = Now();
  entry.samples.emplace_back(now, done);
  while (entry.samples.size() > 2 && now - entry.samples.front().first > 10000) {
    entry.samples.pop_front();
  }
  const double secs = (now - entry.samples.front().first) / 1000.0;
  const int64_t delta = done - entry.samples.front().second;
  const double rate = secs > 0.5 ? delta / secs : p->rate();
  p->set_rate(rate);
  p->set_eta_seconds(rate > 0 ? (total - done) / rate : 0);
}

void Coordinator::EnqueuePlanner(const std::string& job_id) {
  planner_queue_.push_back(job_id);
  planner_wake_.NotifyOne();
}

void Coordinator::ScheduleStepIfWanted(JobEntry& entry) {
  const JobKind* kind = FindJobKind(entry.job.type());
  if (kind != nullptr && !IsFinalState(entry.job.state()) &&
      kind->WantsStep(entry.job, entry.plan, PhaseComplete(entry))) {
    EnqueuePlanner(entry.job.id());
  }
}

void Coordinator::AddTasks(JobEntry& entry, std::vector<v1::Task> tasks, StoreBatch& batch,
                           std::vector<v1::TaskRecord*>& keep) {
  entry.task_ids.clear();
  entry.done_counted = false;
  for (auto& task : tasks) {
    const int64_t id = next_task_id_++;
    auto& rec = tasks_[id];
    rec.set_id(id);
    rec.set_job_id(entry.job.id());
    rec.set_state(v1::TASK_STATE_PENDING);
    task.set_id(id);
    task.set_job_id(entry.job.id());
    *rec.mutable_task() = std::move(task);
    entry.task_ids.push_back(id);
    pending_.insert(id);
    keep.push_back(&rec);
    batch.tasks.push_back(&rec);
  }
  task_available_.NotifyAll();
}

absl::StatusOr<v1::TaskRecord*> Coordinator::FindLease(const std::string& worker_id,
                                                       int64_t task_id, int64_t lease_id) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end() || it->second.state() != v1::TASK_STATE_LEASED ||
      it->second.lease_id() != lease_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", task_id, " lease ", lease_id,
                     " is no longer valid (expired, re-assigned or cancelled); drop its results"));
  }
  if (it->second.worker_id() != worker_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", lease_id, " belongs to another worker"));
  }
  return &it->second;
}

void Coordinator::RequeueOrFail(v1::TaskRecord& task, const std::string& why) {
  JobEntry* entry = FindJob(task.job_id());
  lease_to_task_.erase(task.lease_id());
  task_progress_.erase(task.id());
  if (entry == nullptr) return;
  if (task.attempts() >= options_.max_task_attempts) {
    ++counters_.tasks_failed[TaskKind(task.task())];
    EndJob(*entry, v1::JOB_STATE_FAILED,
           absl::StrCat(TaskName(task), " failed ", task.attempts(), " times; last: ", why));
    return;
  }
  ++counters_.tasks_retried[TaskKind(task.task())];
  task.set_state(v1::TASK_STATE_PENDING);
  task.set_worker_id("");
  pending_.insert(task.id());
  if (task.task().has_train() && task.task().train().nnodes() > 1) RequeueGang(*entry, task, why);
  AddEvent(*entry, absl::StrCat(TaskName(task), " re-queued: ", why));
  StoreBatch batch;
  batch.tasks.push_back(&task);
  batch.jobs.push_back(&entry->job);
  Persist(batch);
  task_available_.NotifyAll();
}

// --- background ---

void Coordinator::TickLoop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    tick_wake_.WaitFor(&mu_, std::chrono::milliseconds(options_.tick_interval_ms));
    if (stopping_) break;
    lock.Unlock();
    Tick();
    lock.Lock();
  }
}

void Coordinator::Tick() {
  MutexLock lock(&mu_);
  const int64_t now = Now();
  std::vector<int64_t> expired;
  for (const auto& [lease, task_id] : lease_to_task_) {
    const auto& t = tasks_.at(task_id);
    if (t.lease_deadline_ms() < now) expired.push_back(task_id);
  }
  for (int64_t id : expired) {
    auto& t = tasks_.at(id);
    RequeueOrFail(t, absl::StrCat("lease on worker ", t.worker_id(), " expired"));
  }
  for (auto it = ended_leases_.begin(); it != ended_leases_.end();) {
    it = it->second.deadline_ms < now ? ended_leases_.erase(it) : std::next(it);
  }
  for (auto& [id, w] : workers_) {
    if (w.state() == v1::WORKER_STATE_LOST) continue;
    if (now - TimeUtil::TimestampToMilliseconds(w.last_heartbeat()) > options_.lease_timeout_ms) {
      w.set_state(v1::WORKER_STATE_LOST);
      Logger("server")->warn("worker {} lost: no heartbeat for {} ms", id,
                             options_.lease_timeout_ms);
      StoreBatch batch;
      batch.workers.push_back(&w);
      Persist(batch);
    }
  }
  PlaceGangs();
  UpdateQueuedReasons();
  for (auto& [id, entry] : jobs_) {
    if (entry.job.state() != v1::JOB_STATE_RUNNING) continue;
    const auto before = entry.job.progress().SerializeAsString();
    RecomputeProgress(entry);
    if (entry.job.progress().SerializeAsString() != before) Touch(entry);
  }
  ForgetOldFinishedJobs();
}

void Coordinator::PlannerLoop() {
  MutexLock lock(&mu_);
  while (true) {
    planner_wake_.Wait(&mu_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || !planner_queue_.empty();
    });
    if (stopping_) return;
    const std::string id = planner_queue_.front();
    planner_queue_.pop_front();
    JobEntry* entry = FindJob(id);
    if (entry == nullptr || IsFinalState(entry->job.state())) continue;
    const JobKind* kind = FindJobKind(entry->job.type());
    if (kind == nullptr || !kind->WantsStep(entry->job, entry->plan, PhaseComplete(*entry))) {
      continue;
    }
    JobSnapshot snapshot;
    snapshot.job = entry->job;
    snapshot.plan = entry->plan;
    for (int64_t task_id : entry->task_ids) snapshot.tasks.push_back(tasks_.at(task_id));
    snapshot.roots = &roots_;
    lock.Unlock();
    const LockedStep step = kind->RunStep(snapshot);
    lock.Lock();
    if (!step) continue;
    entry = FindJob(id);
    if (entry == nullptr || IsFinalState(entry->job.state())) continue;
    KindHost host(*this);
    step(host, entry->job);
  }
}

// --- clients ---

absl::StatusOr<v1::Job> Coordinator::GetJob(const std::string& job_id) const {
  MutexLock lock(&mu_);
  return LookupJob(job_id);
}

absl::StatusOr<v1::ListJobsResponse> Coordinator::ListJobs(const v1::ListJobsRequest& req) const {
  if (req.page_size() < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  const int page_size = req.page_size() == 0 ? 50 : std::min(req.page_size(), 1000);
  const int64_t cursor = req.page_token().empty() ? std::numeric_limits<int64_t>::max()
                                                  : JobSequence(req.page_token());
  if (cursor < 0) {
    return absl::InvalidArgumentError("page_token: not a job id; pass next_page_token back as is");
  }
  auto wanted = [&](const v1::Job& job) {
    if (req.type() != v1::JOB_TYPE_UNSPECIFIED && job.type() != req.type()) return false;
    return req.states_size() == 0 ||
           std::find(req.states().begin(), req.states().end(), job.state()) != req.states().end();
  };
  MutexLock lock(&mu_);
  // Forgotten jobs are finished: the database is read only when some were
  // forgotten and the filter admits a final state.
  bool read_store = newest_forgotten_seq_ >= 0;
  if (read_store && req.states_size() > 0) {
    read_store = std::any_of(req.states().begin(), req.states().end(),
                             [](int s) { return IsFinalState(static_cast<v1::JobState>(s)); });
  }
  v1::ListJobsResponse resp;
  // Newest first, merging memory (every unfinished job, the newest finished
  // ones) with the database's forgotten jobs; the page token is the id of
  // the last job returned.
  auto mem = req.page_token().empty()
                 ? jobs_.rbegin()
                 : std::make_reverse_iterator(jobs_.lower_bound(req.page_token()));
  std::vector<v1::Job> chunk;
  size_t next = 0;
  int64_t store_cursor = std::min(cursor, newest_forgotten_seq_ + 1);
  bool store_done = !read_store;
  // The next forgotten job below store_cursor, or nullptr.
  auto next_stored = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::StatusOr<const v1::Job*> {
    for (;;) {
      while (next < chunk.size() && jobs_.count(chunk[next].id()) > 0) ++next;
      if (next < chunk.size()) return &chunk[next];
      if (store_done) return nullptr;
      constexpr int kChunk = 256;
      ASSIGN_OR_RETURN(chunk, store_->LoadJobsBefore(store_cursor, kChunk));
      next = 0;
      store_done = chunk.size() < static_cast<size_t>(kChunk);
      if (chunk.empty()) return nullptr;
      store_cursor = JobSequence(chunk.back().id());
    }
  };
  for (;;) {
    const v1::Job* m = mem != jobs_.rend() ? &mem->second.job : nullptr;
    const v1::Job* d = nullptr;
    // Database rows are all at or below newest_forgotten_seq_: look only
    // once memory is there too.
    if (!store_done || next < chunk.size()) {
      if (m == nullptr || JobSequence(m->id()) <= newest_forgotten_seq_) {
        ASSIGN_OR_RETURN(d, next_stored());
      }
    }
    if (m == nullptr && d == nullptr) break;
    const bool take_mem =
        d == nullptr || (m != nullptr && JobSequence(m->id()) > JobSequence(d->id()));
    const v1::Job& job = take_mem ? *m : *d;
    if (take_mem) {
      ++mem;
    } else {
      ++next;
    }
    if (!wanted(job)) continue;
    if (resp.jobs_size() == page_size) {
      resp.set_next_page_token(resp.jobs(resp.jobs_size() - 1).id());
      break;
    }
    auto* out = resp.add_jobs();
    *out = job;
    if (req.summary_only()) {
      out->clear_history();
      out->clear_result();
    }
  }
  return resp;
}

absl::StatusOr<v1::Job> Coordinator::CancelJob(const std::string& job_id,
                                               const std::string& reason) {
  MutexLock lock(&mu_);
  JobEntry* entry = FindJob(job_id);
  if (entry == nullptr) {
    // Not in memory: no such job, or one that ended long ago.
    ASSIGN_OR_RETURN(v1::Job job, LookupJob(job_id));
    if (job.state() == v1::JOB_STATE_CANCELLED) return job;
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " already ended ", StateName(job.state())));
  }
  const auto state = entry->job.state();
  if (state == v1::JOB_STATE_CANCELLED) return entry->job;
  if (IsFinalState(state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " already ended ", StateName(state)));
  }
  EndJob(*entry, v1::JOB_STATE_CANCELLED, reason.empty() ? "cancelled by request" : reason);
  return entry->job;
}

absl::StatusOr<v1::Job> Coordinator::WaitForJobChange(const std::string& job_id, uint64_t* version,
                                                      std::chrono::milliseconds timeout) const {
  MutexLock lock(&mu_);
  auto find = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> const JobEntry* {
    auto it = jobs_.find(job_id);
    return it == jobs_.end() ? nullptr : &it->second;
  };
  // A job no longer in memory has ended: it changes no more.
  if (find() == nullptr) return LookupJob(job_id);
  const std::shared_ptr<CondVar> changed = find()->changed;
  changed->WaitFor(&mu_, timeout, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const JobEntry* e = find();
    return stopping_ || *version == 0 || e == nullptr || e->version != *version;
  });
  if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
  const JobEntry* e = find();
  if (e == nullptr) return LookupJob(job_id);
  *version = e->version;
  return e->job;
}

std::vector<v1::Worker> Coordinator::ListWorkers() const {
  MutexLock lock(&mu_);
  std::vector<v1::Worker> out;
  for (const auto& [id, w] : workers_) {
    auto& copy = out.emplace_back(w);
    copy.clear_task_ids();
    for (const auto& [lease, task_id] : lease_to_task_) {
      if (tasks_.at(task_id).worker_id() == id) copy.add_task_ids(task_id);
    }
  }
  return out;
}

// --- workers ---

absl::StatusOr<v1::RegisterWorkerResponse> Coordinator::RegisterWorker(
    const v1::RegisterWorkerRequest& req) {
  if (req.hostname().empty()) return absl::InvalidArgumentError("hostname is required");
  MutexLock lock(&mu_);
  const std::string id = absl::StrFormat("w-%d", next_worker_seq_++);
  auto& w = workers_[id];
  w.set_id(id);
  w.set_hostname(req.hostname());
  w.set_pid(req.pid());
  w.set_version(req.version());
  *w.mutable_resources() = req.resources();
  w.set_state(v1::WORKER_STATE_IDLE);
  *w.mutable_register_time() = TimeUtil::MillisecondsToTimestamp(Now());
  *w.mutable_last_heartbeat() = w.register_time();
  StoreBatch batch;
  batch.workers.push_back(&w);
  Persist(batch);
  Logger("server")->info("worker {} registered: {} pid {} ({} cores, {} threads)", id,
                         req.hostname(), req.pid(), req.resources().cpu_cores(),
                         req.resources().threads());
  v1::RegisterWorkerResponse resp;
  resp.set_worker_id(id);
  resp.set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  resp.set_lease_timeout_ms(options_.lease_timeout_ms);
  resp.set_leases_checks_only(true);
  return resp;
}

absl::StatusOr<v1::HeartbeatResponse> Coordinator::Heartbeat(const v1::HeartbeatRequest& req) {
  MutexLock lock(&mu_);
  auto wit = workers_.find(req.worker_id());
  if (wit == workers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("worker_id: unknown worker '", req.worker_id(), "'; register again"));
  }
  auto& w = wit->second;
  *w.mutable_last_heartbeat() = TimeUtil::MillisecondsToTimestamp(Now());
  if (req.has_resources()) *w.mutable_resources() = req.resources();
  if (w.state() == v1::WORKER_STATE_LOST) {
    Logger("server")->info("worker {} is back", w.id());
    w.set_state(v1::WORKER_STATE_IDLE);
  }
  v1::HeartbeatResponse resp;
  const int64_t deadline = Now() + options_.lease_timeout_ms;
  bool busy = false;
  for (int64_t lease : req.lease_ids()) {
    auto it = lease_to_task_.find(lease);
    if (it == lease_to_task_.end() || tasks_.at(it->second).worker_id() != w.id()) {
      resp.add_revoked_lease_ids(lease);
      continue;
    }
    tasks_.at(it->second).set_lease_deadline_ms(deadline);
    busy = true;
  }
  // An ended job's lease this worker lists no more: its trainer has stopped
  // and reported all it will.
  for (auto it = ended_leases_.begin(); it != ended_leases_.end();) {
    const bool listed = std::find(req.lease_ids().begin(), req.lease_ids().end(), it->first) !=
                        req.lease_ids().end();
    it = it->second.worker_id == w.id() && !listed ? ended_leases_.erase(it) : std::next(it);
  }
  w.set_state(busy ? v1::WORKER_STATE_BUSY : v1::WORKER_STATE_IDLE);
  return resp;
}

absl::StatusOr<v1::LeaseTaskResponse> Coordinator::LeaseTask(const v1::LeaseTaskRequest& req) {
  MutexLock lock(&mu_);
  if (workers_.count(req.worker_id()) == 0) {
    return absl::NotFoundError(
        absl::StrCat("worker_id: unknown worker '", req.worker_id(), "'; register again"));
  }
  const auto wait = std::chrono::milliseconds(std::clamp(req.wait_ms(), 0, 10000));
  const v1::Worker& worker = workers_.at(req.worker_id());
  // The pending task this worker can run that comes first: higher
  // priority, then older job, then lower task id.
  auto pick = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> int64_t {
    bool reserved = false;
    for (int64_t id : pending_) {
      reserved = reserved || tasks_.at(id).reserved_worker_id() == worker.id();
    }
    // One key per candidate, no copies: this runs for every waiting worker
    // whenever a task becomes available, over the whole queue.
    using Key = std::tuple<int64_t, absl::string_view, int64_t>;
    int64_t best = -1;
    Key best_key;
    for (int64_t id : pending_) {
      const auto& t = tasks_.at(id);
      if (req.checks_only() && !IsRequestCheck(t.task())) continue;
      if (!CanLease(t, worker, reserved)) continue;
      const JobEntry* e = FindJob(t.job_id());
      Key key{e ? -e->job.priority() : 0, t.job_id(), id};
      if (best < 0 || key < best_key) {
        best = id;
        best_key = key;
      }
    }
    return best;
  };
  int64_t id = -1;
  task_available_.WaitFor(&mu_, wait, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stopping_) return true;
    id = pick();
    return id >= 0;
  });
  v1::LeaseTaskResponse resp;
  if (stopping_ || id < 0) return resp;
  pending_.erase(id);
  auto& t = tasks_.at(id);
  t.set_state(v1::TASK_STATE_LEASED);
  t.set_attempts(t.attempts() + 1);
  t.set_lease_id(next_lease_id_++);
  ++counters_.tasks_leased[TaskKind(t.task())];
  t.set_worker_id(req.worker_id());
  t.set_lease_deadline_ms(Now() + options_.lease_timeout_ms);
  lease_to_task_[t.lease_id()] = id;
  auto& w = workers_.at(req.worker_id());
  w.set_state(v1::WORKER_STATE_BUSY);
  *w.mutable_last_heartbeat() = TimeUtil::MillisecondsToTimestamp(Now());
  StoreBatch batch;
  batch.tasks.push_back(&t);
  Persist(batch);
  auto* out = resp.mutable_task();
  *out = t.task();
  out->set_lease_id(t.lease_id());
  out->set_attempt(t.attempts());
  *out->mutable_lease_deadline() = TimeUtil::MillisecondsToTimestamp(t.lease_deadline_ms());
  if (JobEntry* entry = FindJob(t.job_id())) {
    RecomputeProgress(*entry);
    if (const JobKind* kind = FindJobKind(entry->job.type())) {
      const std::string where = absl::StrCat("worker ", w.id(), " (", w.hostname(), ")");
      if (std::string phase = kind->RunningPhase(entry->plan, &t.task()); !phase.empty()) {
        entry->job.mutable_progress()->set_phase(std::move(phase));
      }
      bool changed = false;
      if (entry->job.state() == v1::JOB_STATE_QUEUED && kind->LeaseStartsJob(t.task())) {
        SetState(*entry, v1::JOB_STATE_RUNNING, absl::StrCat("started on ", where));
        changed = true;
      } else if (t.attempts() > 1) {
        if (const std::string restart = kind->RestartEvent(where, t.attempts()); !restart.empty()) {
          AddEvent(*entry, restart);
          changed = true;
        }
      }
      if (changed) {
        StoreBatch jb;
        jb.jobs.push_back(&entry->job);
        Persist(jb);
      }
    }
    Touch(*entry);
  }
  return resp;
}

absl::StatusOr<v1::ReportProgressResponse> Coordinator::ReportProgress(
    const v1::ReportProgressRequest& req) {
  MutexLock lock(&mu_);
  v1::ReportProgressResponse resp;
  auto task = FindLease(req.worker_id(), req.task_id(), req.lease_id());
  if (!task.ok()) {
    auto ended = ended_leases_.find(req.lease_id());
    if (ended != ended_leases_.end() && ended->second.worker_id == req.worker_id()) {
      ended->second.deadline_ms = Now() + options_.lease_timeout_ms;
      AppendTrainerOutput(ended->second.job_id, req, &ended->second.taken);
    }
    resp.set_keep_going(false);
    return resp;
  }
  (*task)->set_lease_deadline_ms(Now() + options_.lease_timeout_ms);
  TaskProgress& progress = task_progress_[req.task_id()];
  progress.done = req.done();
  progress.bytes = req.bytes_done();
  if (JobEntry* entry = FindJob((*task)->job_id())) {
    AppendTrainerOutput(entry->job.id(), req, &progress.taken);
    if (req.has_training() && req.training().step() > 0) {
      v1::JobProgress p = req.training();
      // An evaluation's figures stay until the next one.
      if (p.precision_at_1() == 0) {
        p.set_precision_at_1(entry->job.progress().precision_at_1());
        p.set_precision_at_5(entry->job.progress().precision_at_5());
      }
      p.set_phase(entry->job.progress().phase());
      *entry->job.mutable_progress() = p;
      Touch(*entry);
    }
  }
  resp.set_keep_going(true);
  return resp;
}

absl::Status Coordinator::CompleteTask(const v1::CompleteTaskRequest& req) {
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(v1::TaskRecord * task,
                   FindLease(req.worker_id(), req.task_id(), req.lease_id()));
  if (!ResultMatchesTask(task->task(), req.result())) {
    return absl::InvalidArgumentError("result: does not match the task's kind");
  }
  task->set_state(v1::TASK_STATE_DONE);
  *task->mutable_result() = req.result();
  JobEntry* entry = FindJob(task->job_id());
  const JobKind* kind = entry != nullptr ? FindJobKind(entry->job.type()) : nullptr;
  if (entry != nullptr && entry->done_counted) {
    JobEntry::DoneTally& d = entry->done;
    ++d.tasks;
    CountDone(kind, *task, &d.units, &d.bytes, &d.found, &d.skipped);
  }
  if (req.result().has_shard()) {
    counters_.images_written += req.result().shard().shard().num_records();
    counters_.images_converted += req.result().shard().num_converted();
    counters_.images_skipped += req.result().shard().skipped_size();
  }
  lease_to_task_.erase(task->lease_id());
  if (auto w = workers_.find(req.worker_id()); w != workers_.end() && !RunsATask(w->first)) {
    w->second.set_state(v1::WORKER_STATE_IDLE);
  }
  task_progress_.erase(task->id());
  StoreBatch batch;
  batch.tasks.push_back(task);
  Persist(batch);
  if (kind != nullptr) {
    if (kind->ProgressFromTasks()) {
      RecomputeProgress(*entry);
      Touch(*entry);
    }
    KindHost host(*this);
    kind->TaskDone(host, entry->job, *task);  // may end the job, and so drop `task`
  }
  return absl::OkStatus();
}

absl::Status Coordinator::FailTask(const v1::FailTaskRequest& req) {
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(v1::TaskRecord * task,
                   FindLease(req.worker_id(), req.task_id(), req.lease_id()));
  task->set_error(req.error());
  const std::string why = absl::StrCat("worker ", req.worker_id(), ": ", req.error());
  if (!req.retryable()) {
    ++counters_.tasks_failed[TaskKind(task->task())];
    if (JobEntry* entry = FindJob(task->job_id())) {
      EndJob(*entry, v1::JOB_STATE_FAILED, why);
    }
    return absl::OkStatus();
  }
  RequeueOrFail(*task, why);
  return absl::OkStatus();
}

}  // namespace retrain::server
