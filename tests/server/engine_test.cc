// The coordinator's engine in-process, with a fake clock and no background
// tick: lease expiry, heartbeats, lost workers, attempt limits, priorities,
// placement of jobs over several workers, a restart from the store and the
// job kinds' phases (a dataset build's steps, a verification's result), each
// decided by moving the clock and calling Tick(), not by waiting.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/dataset_build.h"
#include "server/coordinator.h"
#include "server/sqlite_store.h"
#include "tests/support/process.h"
#include "tests/support/test_images.h"
#include "tests/worker/tiny_dataset.h"
#include "worker/task_runners.h"

namespace retrain::server {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr int kLeaseTimeoutMs = 10000;
constexpr int64_t kGiB = int64_t{1} << 30;

using retrain::testing::WriteFile;

// Ends a leased task of `worker` with `result`.
absl::Status Complete(Coordinator& engine, const std::string& worker, const v1::Task& task,
                      v1::TaskResult result) {
  v1::CompleteTaskRequest done;
  done.set_worker_id(worker);
  done.set_task_id(task.id());
  done.set_lease_id(task.lease_id());
  *done.mutable_result() = std::move(result);
  return engine.CompleteTask(done);
}

// Runs a leased task as a worker would, in this process.
v1::TaskResult RunAsAWorker(const v1::Task& task) {
  const worker::TaskRunner* runner = worker::FindTaskRunner(task.kind_case());
  EXPECT_NE(runner, nullptr) << task.DebugString();
  if (runner == nullptr) return {};
  worker::TaskEnvironment env;
  auto result = runner->run(task, env);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : v1::TaskResult();
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    // One label directory: one list task, then the planning task.
    WriteFile(root() + "/images/train/cat/1.jpg", test_images::MakeJpeg(16, 16, 90, 1));
    WriteFile(root() + "/images/train/cat/2.jpg", test_images::MakeJpeg(16, 16, 90, 2));
    retrain::testing::WriteTinyDataset(root() + "/dataset", 2);
  }

  const std::string& root() const { return dir_.path(); }

  CoordinatorOptions Options() const {
    CoordinatorOptions o;
    o.data_roots = {root()};
    o.state_dir = root() + "/state";
    o.clock = &clock_;
    o.tick_interval_ms = 0;  // the test calls Tick()
    o.lease_timeout_ms = kLeaseTimeoutMs;
    o.max_task_attempts = 3;
    return o;
  }

  void Start() {
    coordinator_.reset();  // a restart: the old one lets go of the store first
    auto c = Coordinator::Create(Options());
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = std::move(*c);
  }

  Coordinator& engine() { return *coordinator_; }

  std::string RegisterWorker(int cores = 8) {
    v1::RegisterWorkerRequest req;
    req.set_hostname("host-" + std::to_string(++hosts_));
    req.mutable_resources()->set_cpu_cores(cores);
    req.mutable_resources()->set_memory_bytes(64 * kGiB);
    auto resp = engine().RegisterWorker(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->worker_id() : "";
  }

  // Shards: 0 for the default.
  std::string SubmitBuild(int train_shards = 0) {
    v1::SubmitDatasetBuildRequest req;
    req.mutable_spec()->set_train_directory(root() + "/images/train");
    if (train_shards > 0) req.mutable_spec()->set_train_shards(train_shards);
    req.mutable_spec()->set_output_directory(root() + "/out-" + std::to_string(++builds_));
    auto job = engine().SubmitDatasetBuild(req);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->id() : "";
  }

  v1::SubmitTrainingRequest TrainingRequest(int priority, int workers = 1) {
    v1::SubmitTrainingRequest req;
    req.set_priority(priority);
    auto& spec = *req.mutable_spec();
    spec.set_data_dir(root() + "/dataset");
    spec.set_train_dir(root() + "/runs/" + std::to_string(++runs_));
    spec.set_model("small");
    spec.set_max_steps(10);
    spec.set_batch_size(4);
    spec.set_num_workers(workers);
    return req;
  }

  std::string SubmitTraining(const v1::SubmitTrainingRequest& req) {
    auto job = engine().SubmitTraining(req);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->id() : "";
  }

  // A request's check, leased as a worker's check loop leases it (beside
  // any task the worker runs); an unset task when none came.
  v1::Task LeaseCheck(const std::string& worker) {
    v1::LeaseTaskRequest req;
    req.set_worker_id(worker);
    req.set_checks_only(true);
    auto resp = engine().LeaseTask(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->task() : v1::Task();
  }

  // Submits a training job and has `checker` check it, as a worker would.
  std::string SubmitCheckedTraining(const std::string& checker, int priority, int workers = 1) {
    const std::string job = SubmitTraining(TrainingRequest(priority, workers));
    const v1::Task check = LeaseCheck(checker);
    EXPECT_TRUE(check.has_check_training()) << check.DebugString();
    EXPECT_TRUE(Complete(engine(), checker, check, RunAsAWorker(check)).ok());
    EXPECT_TRUE(Job(job).request_checked()) << Job(job).DebugString();
    return job;
  }

  // Leases a task for `worker`, waiting (in real time) up to 5 s for the
  // planner thread to make one; an unset task when none came.
  v1::Task Lease(const std::string& worker, int wait_ms = 5000) {
    v1::LeaseTaskRequest req;
    req.set_worker_id(worker);
    req.set_wait_ms(wait_ms);
    auto resp = engine().LeaseTask(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->task() : v1::Task();
  }

  // A checked training job whose trainer `worker` leased: the task.
  v1::Task LeaseATrainer(const std::string& worker, std::string* job) {
    *job = SubmitCheckedTraining(worker, 0);
    engine().Tick();
    const v1::Task task = Lease(worker, 0);
    EXPECT_TRUE(task.has_train()) << task.DebugString();
    return task;
  }

  // A progress report on `task`'s lease by `worker`, with nothing in it yet.
  static v1::ReportProgressRequest ReportOn(const std::string& worker, const v1::Task& task) {
    v1::ReportProgressRequest req;
    req.set_worker_id(worker);
    req.set_task_id(task.id());
    req.set_lease_id(task.lease_id());
    return req;
  }

  // The job's training series from `offset`, `max_points` at most (0: the
  // default).
  v1::GetJobMetricsResponse Series(const std::string& job, int64_t offset = 0, int max_points = 0) {
    v1::GetJobMetricsRequest req;
    req.set_job_id(job);
    req.set_offset(offset);
    req.set_max_points(max_points);
    auto resp = engine().GetJobMetrics(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? *resp : v1::GetJobMetricsResponse();
  }

  // The job once it is no longer RUNNING (the planner thread ends it), or
  // as it is after 5 s.
  v1::Job WaitWhileRunning(const std::string& job) {
    uint64_t version = 0;
    v1::Job now = Job(job);
    for (int i = 0; i < 50 && now.state() == v1::JOB_STATE_RUNNING; ++i) {
      auto changed = engine().WaitForJobChange(job, &version, milliseconds(100));
      EXPECT_TRUE(changed.ok()) << changed.status();
      if (!changed.ok()) break;
      now = *changed;
    }
    return now;
  }

  // The job's log lines.
  std::vector<std::string> LogOf(const std::string& job) {
    v1::GetJobLogsRequest req;
    req.set_job_id(job);
    auto resp = engine().GetJobLogs(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? std::vector<std::string>(resp->lines().begin(), resp->lines().end())
                     : std::vector<std::string>();
  }

  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const std::string& worker,
                                                  std::vector<int64_t> leases) {
    v1::HeartbeatRequest req;
    req.set_worker_id(worker);
    for (int64_t l : leases) req.add_lease_ids(l);
    return engine().Heartbeat(req);
  }

  bool ReportProgress(const std::string& worker, const v1::Task& task) {
    auto resp = engine().ReportProgress(ReportOn(worker, task));
    return resp.ok() && resp->keep_going();
  }

  v1::Job Job(const std::string& id) {
    auto job = engine().GetJob(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  v1::Worker Worker(const std::string& id) {
    for (const auto& w : engine().ListWorkers()) {
      if (w.id() == id) return w;
    }
    ADD_FAILURE() << "no worker " << id;
    return {};
  }

  // The job's history as one string, to look for reasons in.
  std::string History(const std::string& id) {
    std::string all;
    const v1::Job job = Job(id);
    for (const auto& e : job.history()) all += e.reason() + "\n";
    return all;
  }

  retrain::testing::TempDir dir_;
  mutable FakeClock clock_;
  std::unique_ptr<Coordinator> coordinator_;
  int hosts_ = 0, builds_ = 0, runs_ = 0;
};

TEST_F(EngineTest, ALeaseNotRenewedForALeaseTimeoutGoesToAnotherWorker) {
  Start();
  const std::string a = RegisterWorker(), b = RegisterWorker();
  const std::string job = SubmitBuild();
  const v1::Task first = Lease(a);
  ASSERT_TRUE(first.has_check_build());
  EXPECT_EQ(first.attempt(), 1);
  // Both workers keep heartbeating, but only `b` for the lease it holds.
  clock_.Advance(milliseconds(kLeaseTimeoutMs));
  ASSERT_TRUE(Heartbeat(a, {}).ok());
  ASSERT_TRUE(Heartbeat(b, {}).ok());
  engine().Tick();
  EXPECT_FALSE(Lease(b, 0).has_check_build()) << "expired at the deadline, not after it";

  clock_.Advance(milliseconds(1));
  engine().Tick();
  const v1::Task second = Lease(b, 0);
  EXPECT_EQ(second.id(), first.id());
  EXPECT_EQ(second.attempt(), 2);
  EXPECT_THAT(History(job), HasSubstr("re-queued: lease on worker " + a + " expired"));
  // The first holder is told to stop, and its result is refused.
  EXPECT_FALSE(ReportProgress(a, first));
  v1::CompleteTaskRequest done;
  done.set_worker_id(a);
  done.set_task_id(first.id());
  done.set_lease_id(first.lease_id());
  done.mutable_result()->mutable_check_build();
  EXPECT_EQ(engine().CompleteTask(done).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(ReportProgress(b, second));
}

TEST_F(EngineTest, HeartbeatsAndProgressReportsKeepALeaseAlive) {
  Start();
  const std::string a = RegisterWorker();
  SubmitBuild();
  const v1::Task task = Lease(a);
  ASSERT_TRUE(task.has_check_build());
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(milliseconds(kLeaseTimeoutMs * 3 / 4));
    if (i % 2 == 0) {
      auto hb = Heartbeat(a, {task.lease_id()});
      ASSERT_TRUE(hb.ok());
      EXPECT_TRUE(hb->revoked_lease_ids().empty());
    } else {
      EXPECT_TRUE(ReportProgress(a, task));
    }
    engine().Tick();
  }
  EXPECT_EQ(Worker(a).state(), v1::WORKER_STATE_BUSY);
  EXPECT_TRUE(ReportProgress(a, task)) << "still the holder after 3.75 lease timeouts";
  // Silence: the lease expires and a heartbeat naming it is told so.
  clock_.Advance(milliseconds(kLeaseTimeoutMs + 1));
  engine().Tick();
  auto hb = Heartbeat(a, {task.lease_id()});
  ASSERT_TRUE(hb.ok());
  EXPECT_THAT(hb->revoked_lease_ids(), ::testing::ElementsAre(task.lease_id()));
}

TEST_F(EngineTest, AWorkerSilentForALeaseTimeoutIsLostUntilItsNextHeartbeat) {
  Start();
  const std::string a = RegisterWorker();
  clock_.Advance(milliseconds(kLeaseTimeoutMs));
  engine().Tick();
  EXPECT_EQ(Worker(a).state(), v1::WORKER_STATE_IDLE);
  clock_.Advance(milliseconds(1));
  engine().Tick();
  EXPECT_EQ(Worker(a).state(), v1::WORKER_STATE_LOST);
  ASSERT_TRUE(Heartbeat(a, {}).ok());
  EXPECT_EQ(Worker(a).state(), v1::WORKER_STATE_IDLE);
  // An id the coordinator never gave out must register.
  EXPECT_EQ(Heartbeat("w-999", {}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(EngineTest, ATaskThatFailsMaxAttemptsTimesFailsItsJob) {
  Start();
  const std::string a = RegisterWorker();
  const std::string job = SubmitBuild();
  // Attempt 1 is lost (lease expiry), attempt 2 fails retryably, attempt 3
  // is lost again: the third strike ends the job.
  v1::Task task = Lease(a);
  ASSERT_TRUE(task.has_check_build());
  clock_.Advance(milliseconds(kLeaseTimeoutMs + 1));
  engine().Tick();
  ASSERT_TRUE(Heartbeat(a, {}).ok());
  task = Lease(a, 0);
  ASSERT_EQ(task.attempt(), 2);
  v1::FailTaskRequest fail;
  fail.set_worker_id(a);
  fail.set_task_id(task.id());
  fail.set_lease_id(task.lease_id());
  fail.set_error("disk full");
  fail.set_retryable(true);
  ASSERT_TRUE(engine().FailTask(fail).ok());
  EXPECT_EQ(Job(job).state(), v1::JOB_STATE_RUNNING);
  task = Lease(a, 0);
  ASSERT_EQ(task.attempt(), 3);
  clock_.Advance(milliseconds(kLeaseTimeoutMs + 1));
  engine().Tick();
  const v1::Job failed = Job(job);
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed.history().rbegin()->reason(),
              HasSubstr("failed 3 times; last: lease on worker " + a + " expired"));
  EXPECT_THAT(History(job), HasSubstr("re-queued: worker " + a + ": disk full"));
}

TEST_F(EngineTest, ATaskThatCannotSucceedElsewhereFailsItsJobAtOnce) {
  Start();
  const std::string a = RegisterWorker();
  const std::string job = SubmitBuild();
  const v1::Task task = Lease(a);
  ASSERT_TRUE(task.has_check_build());
  v1::FailTaskRequest fail;
  fail.set_worker_id(a);
  fail.set_task_id(task.id());
  fail.set_lease_id(task.lease_id());
  fail.set_error("output directory not writable");
  ASSERT_TRUE(engine().FailTask(fail).ok());
  const v1::Job failed = Job(job);
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed.history().rbegin()->reason(), HasSubstr("output directory not writable"));
}

TEST_F(EngineTest, HigherPriorityTrainingIsLeasedFirstThenOlderJobsFirst) {
  Start();
  const std::vector<std::string> workers = {RegisterWorker(), RegisterWorker(), RegisterWorker()};
  const std::string low = SubmitCheckedTraining(workers[0], 0);
  const std::string older = SubmitCheckedTraining(workers[0], 5);
  const std::string newer = SubmitCheckedTraining(workers[0], 5);
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    const std::string& w = workers[i];
    const v1::Task t = Lease(w, 0);
    ASSERT_TRUE(t.has_train()) << "worker " << i;
    order.push_back(t.job_id());
    EXPECT_FALSE(Lease(w, 0).has_train()) << "one trainer per worker at a time";
  }
  EXPECT_THAT(order, ::testing::ElementsAre(older, newer, low));
}

TEST_F(EngineTest, AJobOverTwoWorkersStartsOnlyWhenBothAreFreeAndRestartsAsAWhole) {
  Start();
  const std::string a = RegisterWorker();
  const std::string job = SubmitCheckedTraining(a, 0, /*workers=*/2);
  engine().Tick();
  EXPECT_FALSE(Lease(a, 0).has_train()) << "placed on one worker of the two it needs";
  EXPECT_EQ(Job(job).state(), v1::JOB_STATE_QUEUED);

  const std::string b = RegisterWorker();
  engine().Tick();
  const v1::Task on_a = Lease(a, 0), on_b = Lease(b, 0);
  ASSERT_TRUE(on_a.has_train());
  ASSERT_TRUE(on_b.has_train());
  EXPECT_NE(on_a.train().node_rank(), on_b.train().node_rank());
  EXPECT_EQ(on_a.train().master_port(), on_b.train().master_port());
  EXPECT_EQ(Job(job).state(), v1::JOB_STATE_RUNNING);

  // `b` goes silent: its part's lease expires, and `a`'s part, which would
  // wait for a peer that never comes, is stopped too.
  clock_.Advance(milliseconds(kLeaseTimeoutMs / 2));
  ASSERT_TRUE(Heartbeat(a, {on_a.lease_id()}).ok());
  clock_.Advance(milliseconds(kLeaseTimeoutMs / 2 + 1));
  engine().Tick();
  EXPECT_FALSE(ReportProgress(a, on_a));
  EXPECT_THAT(History(job), HasSubstr("lease on worker " + b + " expired"));
  // Placed again on two free workers, both parts at their second attempt.
  const std::string c = RegisterWorker();
  ASSERT_TRUE(Heartbeat(a, {}).ok());
  engine().Tick();
  const v1::Task again_a = Lease(a, 0), again_c = Lease(c, 0);
  ASSERT_TRUE(again_a.has_train());
  ASSERT_TRUE(again_c.has_train());
  EXPECT_EQ(again_a.attempt() + again_c.attempt(), 4);
}

// A cancelled training's trainer writes its checkpoint and says so as it
// stops: those last lines (and points) reach the job's log (and series)
// from the worker that held the lease, for as long as it keeps reporting (a
// lease timeout each time).
TEST_F(EngineTest, ACancelledTasksLastLogLinesReachItsJobsLog) {
  Start();
  const std::string a = RegisterWorker(), b = RegisterWorker();
  std::string job;
  const v1::Task task = LeaseATrainer(a, &job);
  ASSERT_TRUE(engine().CancelJob(job, "").ok());
  auto report = [&](const std::string& worker, const std::string& line) {
    v1::ReportProgressRequest req = ReportOn(worker, task);
    req.add_log_lines(line);
    // Each line comes with a checkpoint point, which follows it.
    v1::TrainingPoint* point = req.add_points();
    point->set_kind(v1::TrainingPoint::KIND_CHECKPOINT);
    point->set_checkpoint(line);
    auto resp = engine().ReportProgress(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    EXPECT_FALSE(resp.ok() && resp->keep_going()) << "a cancelled task goes on";
  };
  auto log = [&] { return LogOf(job); };
  clock_.Advance(milliseconds(kLeaseTimeoutMs));
  engine().Tick();
  report(a, "checkpoint model.ckpt-7");
  report(b, "not the holder");
  clock_.Advance(milliseconds(kLeaseTimeoutMs));
  engine().Tick();
  report(a, "stopped on request at step 7");
  clock_.Advance(milliseconds(kLeaseTimeoutMs + 1));
  engine().Tick();
  report(a, "after a lease timeout of silence");
  EXPECT_THAT(log(),
              ::testing::ElementsAre("checkpoint model.ckpt-7", "stopped on request at step 7"));
  v1::GetJobMetricsRequest req;
  req.set_job_id(job);
  auto series = engine().GetJobMetrics(req);
  ASSERT_TRUE(series.ok()) << series.status();
  ASSERT_EQ(series->points_size(), 2);
  EXPECT_EQ(series->points(0).checkpoint(), "checkpoint model.ckpt-7");
  EXPECT_EQ(series->points(1).checkpoint(), "stopped on request at step 7");
}

// A cancelled job's log and series end (job_ended, where `retrain logs
// --follow` stops) once its trainer has stopped: when its worker lists the
// lease no more, or after a lease timeout of silence, not at the cancel.
TEST_F(EngineTest, ACancelledJobsLogEndsOnceItsTrainerHasStopped) {
  Start();
  const std::string a = RegisterWorker();
  std::string job;
  const v1::Task task = LeaseATrainer(a, &job);
  ASSERT_TRUE(engine().CancelJob(job, "").ok());
  auto ended = [&] {
    v1::GetJobLogsRequest logs;
    logs.set_job_id(job);
    auto log = engine().GetJobLogs(logs);
    const bool series_ended = Series(job).job_ended();
    EXPECT_TRUE(log.ok()) << log.status();
    EXPECT_EQ(log.ok() && log->job_ended(), series_ended) << "the log and the series agree";
    return series_ended;
  };
  EXPECT_FALSE(ended()) << "its trainer may still write its last lines";
  ASSERT_TRUE(Heartbeat(a, {task.lease_id()}).ok());  // still stopping
  EXPECT_FALSE(ended());
  v1::ReportProgressRequest last = ReportOn(a, task);
  last.add_log_lines("stopped on request at step 7");
  ASSERT_TRUE(engine().ReportProgress(last).ok());
  ASSERT_TRUE(Heartbeat(a, {}).ok());  // its task is over
  EXPECT_TRUE(ended());
  EXPECT_THAT(LogOf(job), ::testing::ElementsAre("stopped on request at step 7"));

  // A worker that goes silent instead: ended after a lease timeout.
  std::string silent_job;
  LeaseATrainer(a, &silent_job);
  ASSERT_TRUE(engine().CancelJob(silent_job, "").ok());
  EXPECT_FALSE(Series(silent_job).job_ended());
  clock_.Advance(milliseconds(kLeaseTimeoutMs + 1));
  engine().Tick();
  EXPECT_TRUE(Series(silent_job).job_ended());
}

v1::TrainingPoint StepPoint(int64_t step, double loss) {
  v1::TrainingPoint p;
  p.set_kind(v1::TrainingPoint::KIND_STEP);
  p.set_step(step);
  p.set_max_steps(10);
  p.set_loss(loss);
  return p;
}

v1::TrainingPoint CheckpointPoint(int64_t step) {
  v1::TrainingPoint p;
  p.set_kind(v1::TrainingPoint::KIND_CHECKPOINT);
  p.set_step(step);
  p.set_checkpoint("model.ckpt-" + std::to_string(step));
  return p;
}

// Every point a worker's reports carry joins the job's series, in order,
// read from any offset, kept across a restart, and ended with the job.
TEST_F(EngineTest, EveryReportedTrainingPointJoinsTheJobsSeries) {
  Start();
  const std::string a = RegisterWorker();
  std::string job;
  const v1::Task task = LeaseATrainer(a, &job);
  auto report = [&](std::vector<v1::TrainingPoint> points) {
    v1::ReportProgressRequest req = ReportOn(a, task);
    req.mutable_training()->set_step(points.back().step());
    for (auto& p : points) *req.add_points() = std::move(p);
    auto resp = engine().ReportProgress(req);
    ASSERT_TRUE(resp.ok()) << resp.status();
    EXPECT_TRUE(resp->keep_going());
  };
  auto series = [&](int64_t offset, int max_points) { return Series(job, offset, max_points); };
  auto steps = [](const v1::GetJobMetricsResponse& resp) {
    std::vector<int64_t> out;
    for (const auto& p : resp.points()) out.push_back(p.step());
    return out;
  };
  EXPECT_EQ(series(0, 0).points_size(), 0);
  report({StepPoint(2, 2.3), StepPoint(4, 2.0)});
  report({StepPoint(6, 1.5), CheckpointPoint(6), StepPoint(8, 1.1)});
  v1::GetJobMetricsResponse all = series(0, 0);
  EXPECT_THAT(steps(all), ::testing::ElementsAre(2, 4, 6, 6, 8));
  EXPECT_EQ(all.points(3).checkpoint(), "model.ckpt-6");
  EXPECT_DOUBLE_EQ(all.points(2).loss(), 1.5);
  EXPECT_EQ(all.next_offset(), 5);
  EXPECT_FALSE(all.job_ended());
  const v1::GetJobMetricsResponse page = series(1, 2);
  EXPECT_THAT(steps(page), ::testing::ElementsAre(4, 6));
  EXPECT_EQ(page.next_offset(), 3);
  EXPECT_EQ(series(5, 0).points_size(), 0);

  // Kept across a restart; ended once the job has and its trainer stopped.
  Start();
  EXPECT_THAT(steps(series(0, 0)), ::testing::ElementsAre(2, 4, 6, 6, 8));
  ASSERT_TRUE(engine().CancelJob(job, "").ok());
  ASSERT_TRUE(Heartbeat(a, {}).ok());
  EXPECT_TRUE(series(0, 0).job_ended());
  EXPECT_FALSE(series(0, 4).job_ended()) << "a page with more after it";

  // A job that never was, and an offset before the start.
  v1::GetJobMetricsRequest req;
  req.set_job_id("j-999999");
  EXPECT_EQ(engine().GetJobMetrics(req).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(engine().GetJobMetrics(req).status().message()), HasSubstr("j-999999"));
  req.set_job_id(job);
  req.set_offset(-1);
  EXPECT_EQ(engine().GetJobMetrics(req).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(engine().GetJobMetrics(req).status().message()), HasSubstr("offset"));
}

// A worker that could not reach the coordinator sends a report's lines and
// points again with those that came since; when the first did arrive (only
// its answer was lost), the coordinator keeps each line and point once, on
// the lease and after its job ended alike.
TEST_F(EngineTest, AReportSentAgainAddsEachLogLineAndPointOnce) {
  Start();
  const std::string a = RegisterWorker();
  std::string job;
  const v1::Task task = LeaseATrainer(a, &job);
  auto report = [&](int64_t before, std::vector<int64_t> steps) {
    v1::ReportProgressRequest req = ReportOn(a, task);
    req.set_log_lines_before(before);
    req.set_points_before(before);
    for (int64_t step : steps) {
      req.add_log_lines("step " + std::to_string(step));
      *req.add_points() = StepPoint(step, 1.0);
    }
    ASSERT_TRUE(engine().ReportProgress(req).ok());
  };
  auto logged = [&] { return LogOf(job); };
  auto charted = [&] {
    const v1::GetJobMetricsResponse series = Series(job);
    std::vector<int64_t> steps;
    for (const auto& p : series.points()) steps.push_back(p.step());
    return steps;
  };
  report(0, {1, 2});
  report(0, {1, 2, 3});  // its answer was lost: sent again with step 3
  report(3, {4});
  EXPECT_THAT(charted(), ::testing::ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(logged(), ::testing::ElementsAre("step 1", "step 2", "step 3", "step 4"));

  ASSERT_TRUE(engine().CancelJob(job, "").ok());
  report(4, {5, 6});
  report(4, {5, 6, 7});  // the trainer's last words, after the cancel
  EXPECT_THAT(charted(), ::testing::ElementsAre(1, 2, 3, 4, 5, 6, 7));
  EXPECT_THAT(logged(), ::testing::ElementsAre("step 1", "step 2", "step 3", "step 4", "step 5",
                                               "step 6", "step 7"));
}

// A training's first task is a worker's check of its dataset and
// checkpoints, which the coordinator does not read. It runs beside the
// worker's trainer and the job stays QUEUED through it; what its findings
// show fails the job with the code a submission would have had.
TEST_F(EngineTest, ATrainingIsCheckedBesideARunningTrainerAndStaysQueuedThroughIt) {
  Start();
  const std::string a = RegisterWorker();
  const std::string running = SubmitCheckedTraining(a, 0);
  const v1::Task trainer = Lease(a, 0);
  ASSERT_TRUE(trainer.has_train());

  const std::string next = SubmitTraining(TrainingRequest(0));
  EXPECT_FALSE(Job(next).request_checked());
  const v1::Task check = LeaseCheck(a);
  ASSERT_TRUE(check.has_check_training());
  EXPECT_EQ(Job(next).state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(Worker(a).task_ids_size(), 2);
  ASSERT_TRUE(Complete(engine(), a, check, RunAsAWorker(check)).ok());
  const v1::Job checked = Job(next);
  EXPECT_EQ(checked.state(), v1::JOB_STATE_QUEUED);
  EXPECT_TRUE(checked.request_checked());
  EXPECT_THAT(History(next), HasSubstr("request checked: needs 1 CPU core(s) and "));
  EXPECT_EQ(Worker(a).state(), v1::WORKER_STATE_BUSY) << "its trainer still runs";
  EXPECT_TRUE(fs::is_directory(root() + "/runs/2")) << "the check creates train_dir";
  engine().Tick();
  EXPECT_THAT(Job(next).progress().phase(), HasSubstr("the 1 worker(s) that have it are busy"));

  // Refused by what the worker found: no dataset there ...
  v1::SubmitTrainingRequest missing = TrainingRequest(0);
  missing.mutable_spec()->set_data_dir(root() + "/no-dataset");
  const std::string no_data = SubmitTraining(missing);
  const v1::Task check_missing = LeaseCheck(a);
  ASSERT_TRUE(Complete(engine(), a, check_missing, RunAsAWorker(check_missing)).ok());
  EXPECT_EQ(Job(no_data).state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(Job(no_data).error_code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Job(no_data).error(), HasSubstr("spec.data_dir: "));
  // ... or by what the coordinator judged from it: memory no worker has.
  v1::SubmitTrainingRequest huge = TrainingRequest(0);
  huge.mutable_spec()->set_input_queue_memory_factor(50000000);
  const std::string too_big = SubmitTraining(huge);
  const v1::Task check_huge = LeaseCheck(a);
  ASSERT_TRUE(Complete(engine(), a, check_huge, RunAsAWorker(check_huge)).ok());
  EXPECT_EQ(Job(too_big).state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(Job(too_big).error_code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Job(too_big).error(), HasSubstr("of host memory on one worker"));
  EXPECT_EQ(Job(running).state(), v1::JOB_STATE_RUNNING);
}

TEST_F(EngineTest, ARestartedCoordinatorKeepsLeasesForTwoLeaseTimeouts) {
  Start();
  const std::string a = RegisterWorker(), b = RegisterWorker();
  const std::string job = SubmitBuild();
  const v1::Task task = Lease(a);
  ASSERT_TRUE(task.has_check_build());

  Start();  // a new coordinator on the same store
  EXPECT_EQ(Job(job).state(), v1::JOB_STATE_RUNNING);
  // Past one lease timeout the holder still holds it: it gets two to
  // reconnect after a restart.
  clock_.Advance(milliseconds(kLeaseTimeoutMs + 1));
  ASSERT_TRUE(Heartbeat(b, {}).ok());
  engine().Tick();
  EXPECT_FALSE(Lease(b, 0).has_check_build());
  EXPECT_TRUE(ReportProgress(a, task)) << "the lease survived the restart";
  // Then it goes silent, and the task moves on.
  clock_.Advance(milliseconds(kLeaseTimeoutMs + 1));
  ASSERT_TRUE(Heartbeat(b, {}).ok());
  engine().Tick();
  const v1::Task moved = Lease(b, 0);
  EXPECT_EQ(moved.id(), task.id());
  EXPECT_EQ(moved.attempt(), 2);
  EXPECT_GT(moved.lease_id(), task.lease_id()) << "lease ids are not reused after a restart";
}

TEST_F(EngineTest, ShardTasksGoLargestFirst) {
  Start();
  const std::string a = RegisterWorker();
  const std::string job = SubmitBuild(3);
  const v1::Task check = Lease(a);
  ASSERT_TRUE(check.has_check_build());
  ASSERT_TRUE(Complete(engine(), a, check, RunAsAWorker(check)).ok());
  const v1::Task list = Lease(a);
  ASSERT_TRUE(list.has_list());
  // As if the label directory held 10 files, dealt 3, 3 and 4 into the
  // three shards.
  v1::TaskResult listed;
  v1::ListedLabel& l = *listed.mutable_list()->add_listed();
  l.set_split("train");
  l.set_files(10);
  ASSERT_TRUE(Complete(engine(), a, list, listed).ok());
  const v1::Task plan = Lease(a);
  ASSERT_TRUE(plan.has_plan_shards());
  EXPECT_THAT(History(job), HasSubstr("listed 10 files (0 refused); planning the shards"));
  v1::TaskResult planned;
  planned.mutable_plan_shards()->set_train_records(10);
  ASSERT_TRUE(Complete(engine(), a, plan, planned).ok());
  // Leased in task order (once the planner thread has made the tasks):
  // the largest shard first, then the others in their order.
  std::vector<std::pair<std::string, int64_t>> leased;
  for (const std::string& worker : {a, RegisterWorker(), RegisterWorker()}) {
    const v1::Task shard = Lease(worker);
    ASSERT_TRUE(shard.has_shard());
    leased.emplace_back(shard.shard().file_name(), shard.shard().workspace_entries());
  }
  EXPECT_THAT(leased,
              ::testing::ElementsAre(std::pair<std::string, int64_t>{"train-00002-of-00003", 4},
                                     std::pair<std::string, int64_t>{"train-00000-of-00003", 3},
                                     std::pair<std::string, int64_t>{"train-00001-of-00003", 3}));
  EXPECT_THAT(History(job),
              HasSubstr("planned 10 files into 3 shards; validating and writing them"));
}

TEST_F(EngineTest, ADatasetBuildGoesThroughItsPhasesOnWorkersAcrossARestart) {
  Start();
  const std::string a = RegisterWorker();
  const std::string job = SubmitBuild();
  // A worker checks the request and reads the labels, then lists the label
  // directory; the coordinator reads no directory.
  const v1::Task check = Lease(a);
  ASSERT_TRUE(check.has_check_build());
  EXPECT_EQ(Job(job).state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(Job(job).progress().phase(), "checking the request");
  EXPECT_FALSE(Job(job).request_checked());
  ASSERT_TRUE(Complete(engine(), a, check, RunAsAWorker(check)).ok());
  const v1::Task list = Lease(a);
  ASSERT_TRUE(list.has_list());
  EXPECT_TRUE(Job(job).request_checked());
  EXPECT_THAT(History(job), HasSubstr("request checked: 1 labels; listing their files"));
  EXPECT_EQ(Job(job).progress().phase(), "listing");
  EXPECT_EQ(Job(job).progress().unit(), "directories");
  ASSERT_TRUE(Complete(engine(), a, list, RunAsAWorker(list)).ok());

  // Then plans the shards from the listing.
  const v1::Task plan = Lease(a);
  ASSERT_TRUE(plan.has_plan_shards());
  EXPECT_EQ(Job(job).progress().phase(), "planning shards");
  EXPECT_EQ(Job(job).progress().unit(), "tasks");
  EXPECT_EQ(Job(job).progress().total(), 1);
  EXPECT_THAT(History(job), HasSubstr("listed 2 files (0 refused); planning the shards"));
  ASSERT_TRUE(Complete(engine(), a, plan, RunAsAWorker(plan)).ok());

  // The shards (two by default), whose tasks validate the files.
  const v1::Task first = Lease(a);
  ASSERT_TRUE(first.has_shard());
  EXPECT_EQ(Job(job).progress().phase(), "writing shards");
  EXPECT_EQ(Job(job).progress().unit(), "files");
  EXPECT_THAT(History(job),
              HasSubstr("planned 2 files into 2 shards; validating and writing them"));
  ASSERT_TRUE(Complete(engine(), a, first, RunAsAWorker(first)).ok());
  const v1::Task second = Lease(a, 0);
  ASSERT_TRUE(second.has_shard());
  // Progress, counted as tasks finish: one shard of a file written, the
  // other being written.
  const v1::JobProgress writing = Job(job).progress();
  EXPECT_EQ(writing.tasks_done(), 1);
  EXPECT_EQ(writing.tasks_running(), 1);
  EXPECT_EQ(writing.tasks_total(), 2);
  EXPECT_EQ(writing.done(), 1);
  EXPECT_EQ(writing.total(), 2);
  EXPECT_GT(writing.bytes_done(), 0);

  // A restart with the last shard reported but gone from disk: the
  // finalizing worker finds it missing and it is written again.
  const v1::TaskResult written = RunAsAWorker(second);
  fs::remove(second.shard().output_directory() + "/" + second.shard().file_name());
  ASSERT_TRUE(Complete(engine(), a, second, written).ok());
  Start();
  ASSERT_TRUE(Heartbeat(a, {}).ok());
  const v1::Task finalize = Lease(a);
  ASSERT_TRUE(finalize.has_finalize_build());
  ASSERT_TRUE(Complete(engine(), a, finalize, RunAsAWorker(finalize)).ok());
  const v1::Task again = Lease(a);
  ASSERT_TRUE(again.has_shard());
  EXPECT_EQ(again.shard().file_name(), second.shard().file_name());
  EXPECT_THAT(History(job), HasSubstr("shard file missing or damaged; writing it again"));
  ASSERT_TRUE(Complete(engine(), a, again, RunAsAWorker(again)).ok());

  // The last task writes the manifest; the job ends with the counts.
  const v1::Task last = Lease(a);
  ASSERT_TRUE(last.has_finalize_build());
  ASSERT_TRUE(Complete(engine(), a, last, RunAsAWorker(last)).ok());
  const v1::Job ended = WaitWhileRunning(job);
  ASSERT_EQ(ended.state(), v1::JOB_STATE_SUCCEEDED) << ended.error();
  const v1::DatasetBuildResult& result = ended.dataset_build_result();
  EXPECT_EQ(result.train().num_records(), 2);
  EXPECT_EQ(result.train().shards_size(), 2);
  ASSERT_EQ(result.train().class_counts_size(), 1);
  EXPECT_EQ(result.train().class_counts(0).count(), 2);
  EXPECT_TRUE(fs::exists(result.manifest()));
  EXPECT_TRUE(fs::exists(result.output_directory() + "/skipped.jsonl"));
  EXPECT_FALSE(fs::exists(result.output_directory() + "/.retrain-build")) << "workspace left";
  EXPECT_EQ(ended.progress().phase(), "done");
}

// A build whose stored plan is in a phase this coordinator does not have
// (another version planned it) fails, saying to build again, rather than
// waiting for ever.
TEST_F(EngineTest, ABuildWhosePlanIsInAnUnknownPhaseFails) {
  Start();
  const std::string a = RegisterWorker();
  const std::string job = SubmitBuild();
  const v1::Task check = Lease(a);
  ASSERT_TRUE(check.has_check_build());
  coordinator_.reset();
  {
    auto store = SqliteStore::Open(Options().state_dir);
    ASSERT_TRUE(store.ok()) << store.status();
    auto contents = (*store)->LoadState(10);
    ASSERT_TRUE(contents.ok()) << contents.status();
    ASSERT_EQ(contents->plans.size(), 1u);
    v1::BuildPlan plan = contents->plans[0].second;
    plan.set_phase(static_cast<v1::BuildPlan::Phase>(1));  // the probing phase of old
    StoreBatch batch;
    batch.plans.emplace_back(job, &plan);
    ASSERT_TRUE((*store)->Commit(batch).ok());
  }
  Start();
  ASSERT_TRUE(Complete(engine(), a, check, RunAsAWorker(check)).ok());
  const v1::Job ended = WaitWhileRunning(job);
  EXPECT_EQ(ended.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(ended.error(), HasSubstr("plan is in phase 1, which this coordinator does not know"));
  EXPECT_THAT(ended.error(), HasSubstr("build the dataset again"));
}

TEST_F(EngineTest, AVerificationEndsWithTheDamageItsShardTasksFound) {
  Start();
  const std::string a = RegisterWorker(), b = RegisterWorker();
  v1::SubmitDatasetVerifyRequest req;
  req.mutable_spec()->set_data_dir(root() + "/dataset");
  auto submitted = engine().SubmitDatasetVerify(req);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string job = submitted->id();
  // A worker reads the manifest (the coordinator reads none); its shards
  // become the verify tasks.
  const v1::Task check = Lease(a);
  ASSERT_TRUE(check.has_check_verify());
  EXPECT_EQ(Job(job).progress().phase(), "checking the request");
  ASSERT_TRUE(Complete(engine(), a, check, RunAsAWorker(check)).ok());
  EXPECT_TRUE(Job(job).request_checked());
  EXPECT_THAT(History(job), HasSubstr("request checked: 2 shards, 2 records"));
  const v1::Task on_a = Lease(a, 0), on_b = Lease(b, 0);
  ASSERT_TRUE(on_a.has_verify_shard());
  ASSERT_TRUE(on_b.has_verify_shard());
  EXPECT_EQ(Job(job).state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(Job(job).progress().phase(), "verifying");
  EXPECT_EQ(Job(job).progress().unit(), "records");
  EXPECT_EQ(Job(job).progress().total(), 2) << "one record a shard";

  auto complete = [&](const std::string& worker, const v1::Task& task, bool damaged) {
    v1::CompleteTaskRequest done;
    done.set_worker_id(worker);
    done.set_task_id(task.id());
    done.set_lease_id(task.lease_id());
    auto* r = done.mutable_result()->mutable_verify_shard();
    r->set_file(task.verify_shard().file());
    r->set_records(1);
    r->set_bytes(4096);
    if (damaged) {
      auto* d = r->add_damage();
      d->set_file(task.verify_shard().file());
      d->set_offset(0);
      d->set_problem("corrupt record at offset 0 (data checksum mismatch)");
    }
    return engine().CompleteTask(done);
  };
  v1::CompleteTaskRequest wrong;
  wrong.set_worker_id(a);
  wrong.set_task_id(on_a.id());
  wrong.set_lease_id(on_a.lease_id());
  wrong.mutable_result()->mutable_list();
  EXPECT_EQ(engine().CompleteTask(wrong).code(), absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(complete(a, on_a, /*damaged=*/false).ok());
  EXPECT_EQ(Job(job).state(), v1::JOB_STATE_RUNNING) << "one shard is still being read";
  ASSERT_TRUE(complete(b, on_b, /*damaged=*/true).ok());
  const v1::Job ended = Job(job);
  EXPECT_EQ(ended.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(ended.error(),
              HasSubstr("damaged: 1 of 2 shards (" + on_b.verify_shard().file() + ")"));
  const v1::DatasetVerifyResult& result = ended.dataset_verify_result();
  EXPECT_FALSE(result.intact());
  EXPECT_EQ(result.shards_checked(), 2);
  EXPECT_EQ(result.records_checked(), 2);
  EXPECT_EQ(result.bytes_checked(), 8192);
  ASSERT_EQ(result.damage_size(), 1);
  EXPECT_EQ(result.damage(0).file(), on_b.verify_shard().file());

  // The same dataset, intact this time, after a restart: the result survives it.
  auto again = engine().SubmitDatasetVerify(req);
  ASSERT_TRUE(again.ok());
  const v1::Task check_again = Lease(a);
  ASSERT_TRUE(Complete(engine(), a, check_again, RunAsAWorker(check_again)).ok());
  const v1::Task first = Lease(a), second = Lease(b, 0);
  ASSERT_TRUE(complete(a, first, false).ok());
  ASSERT_TRUE(complete(b, second, false).ok());
  Start();
  EXPECT_EQ(Job(again->id()).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE(Job(again->id()).dataset_verify_result().intact());
  EXPECT_EQ(Job(job).dataset_verify_result().damage_size(), 1);
}

TEST_F(EngineTest, AVerificationOfADirectoryWithoutAManifestIsRefused) {
  Start();
  const std::string a = RegisterWorker();
  v1::SubmitDatasetVerifyRequest req;
  // Outside the roots by its spelling: refused at submission.
  req.mutable_spec()->set_data_dir("/etc");
  EXPECT_EQ(engine().SubmitDatasetVerify(req).status().code(),
            absl::StatusCode::kPermissionDenied);
  // No manifest there: the worker that reads it refuses, and the job fails
  // with the code the submission would have had.
  req.mutable_spec()->set_data_dir(root() + "/images");
  auto submitted = engine().SubmitDatasetVerify(req);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const v1::Task check = Lease(a);
  ASSERT_TRUE(check.has_check_verify());
  ASSERT_TRUE(Complete(engine(), a, check, RunAsAWorker(check)).ok());
  const v1::Job failed = Job(submitted->id());
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_TRUE(failed.request_checked());
  EXPECT_EQ(failed.error_code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(failed.error(), HasSubstr("spec.data_dir"));
}

}  // namespace
}  // namespace retrain::server
