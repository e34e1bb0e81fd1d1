// Operating the coordinator, with the real server and worker binaries on
// loopback: the gRPC health service and reflection, the HTTP endpoints
// (health, readiness, JSON job views matching gRPC, Prometheus metrics that
// follow the text format and move when work happens, the status page),
// and every token case on gRPC and HTTP.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "retrain/v1/worker_service.grpc.pb.h"
#include "tests/support/browser.h"
#include "tests/support/cluster.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_images.h"

namespace retrain::testing {
namespace {

namespace v1 = retrain::v1;
using test_images::MakeJpeg;
using test_images::WriteFile;
using ::testing::HasSubstr;

constexpr const char* kClientToken = "client-secret-7f3a";
constexpr const char* kWorkerToken = "worker-secret-91c2";

ClusterOptions WithHttpAndTokens() {
  ClusterOptions o;
  o.http = true;
  o.client_token = kClientToken;
  o.worker_token = kWorkerToken;
  return o;
}

// Two labels of a few JPEGs each, plus one file that is not an image.
void WriteImages(const std::string& root) {
  for (const char* label : {"cat", "dog"}) {
    std::filesystem::create_directories(root + "/train/" + label);
    for (int i = 0; i < 6; ++i) {
      WriteFile(root + "/train/" + label + "/" + std::to_string(i) + ".jpg",
                MakeJpeg(40, 30, 90, static_cast<uint64_t>(i + 1)));
    }
  }
  WriteFile(root + "/train/dog/broken.jpg", "this is not a JPEG");
}

v1::Job BuildDataset(Cluster& cluster, const std::string& root) {
  v1::SubmitDatasetBuildRequest req;
  req.mutable_spec()->set_train_directory(root + "/train");
  req.mutable_spec()->set_output_directory(root + "/out");
  v1::Job job;
  grpc::ClientContext ctx;
  cluster.Authorize(ctx);
  EXPECT_TRUE(cluster.jobs().SubmitDatasetBuild(&ctx, req, &job).ok());
  return cluster.WaitForEnd(job.id());
}

httplib::Headers Bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

// name{labels} -> value, from a Prometheus text exposition.
std::map<std::string, double> Samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

// Checks the rules of the text format (version 0.0.4) that a scraper
// relies on, and returns the families' types.
std::map<std::string, std::string> CheckExpositionFormat(const std::string& text) {
  static const std::regex kHelp(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*)");
  static const std::regex kType(
      R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
  static const std::regex kSample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?[0-9]+)?)");
  std::map<std::string, std::string> types;
  std::set<std::string> seen_samples;
  std::string current;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) {
      EXPECT_EQ(types.count(m[1]), 0u) << "HELP after TYPE or twice for " << m[1];
      current = m[1];
    } else if (std::regex_match(line, m, kType)) {
      EXPECT_EQ(m[1], current) << "TYPE without its HELP: " << line;
      EXPECT_TRUE(types.emplace(m[1], m[2]).second) << "family declared twice: " << m[1];
    } else if (std::regex_match(line, m, kSample)) {
      const std::string name = m[1];
      // Samples follow their family's TYPE; histograms and summaries add
      // suffixes.
      const bool belongs = name == current || name == current + "_bucket" ||
                           name == current + "_sum" || name == current + "_count";
      EXPECT_TRUE(belongs) << "line " << n << " outside its family " << current << ": " << line;
      EXPECT_TRUE(seen_samples.insert(line.substr(0, line.rfind(' '))).second)
          << "duplicate series: " << line;
    } else {
      ADD_FAILURE() << "line " << n << " is not in the text format: '" << line << "'";
    }
  }
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  return types;
}

TEST(OperationsTest, HealthAndReflectionOverGrpc) {
  TempDir dir;
  Cluster cluster(dir.path(), WithHttpAndTokens());
  cluster.StartServer();
  auto channel = grpc::CreateChannel(cluster.address(), grpc::InsecureChannelCredentials());

  // Health needs no token; every service reports SERVING.
  auto health = grpc::health::v1::Health::NewStub(channel);
  for (const char* service : {"", "retrain.v1.JobService", "retrain.v1.WorkerService"}) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&ctx, req, &resp).ok()) << service;
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }

  // Reflection lists the API, so generic gRPC tools can call it.
  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = reflection->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::set<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.insert(s.name());
  EXPECT_TRUE(names.count("retrain.v1.JobService"));
  EXPECT_TRUE(names.count("retrain.v1.WorkerService"));
  EXPECT_TRUE(names.count("grpc.health.v1.Health"));
  // ... and describes its messages.
  req.Clear();
  req.set_file_containing_symbol("retrain.v1.JobService");
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0);
  stream->WritesDone();
}

TEST(OperationsTest, EveryTokenCaseOnGrpcAndHttp) {
  TempDir dir;
  Cluster cluster(dir.path(), WithHttpAndTokens());
  cluster.StartServer();
  auto channel = grpc::CreateChannel(cluster.address(), grpc::InsecureChannelCredentials());
  auto jobs = v1::JobService::NewStub(channel);
  auto workers = v1::WorkerService::NewStub(channel);
  auto list = [&](const std::string& token) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::ListJobsResponse resp;
    return jobs->ListJobs(&ctx, v1::ListJobsRequest(), &resp);
  };
  auto register_worker = [&](const std::string& token) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::RegisterWorkerRequest req;
    req.set_hostname("test");
    v1::RegisterWorkerResponse resp;
    return workers->RegisterWorker(&ctx, req, &resp);
  };
  EXPECT_TRUE(list(kClientToken).ok());
  grpc::Status s = list("");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("RETRAIN_TOKEN"));
  EXPECT_EQ(list("wrong").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  s = list(kWorkerToken);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("a worker token cannot call the client API"));
  EXPECT_TRUE(register_worker(kWorkerToken).ok());
  EXPECT_EQ(register_worker("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(register_worker(kClientToken).error_code(), grpc::StatusCode::PERMISSION_DENIED);

  httplib::Client http("127.0.0.1", cluster.http_port());
  for (const char* path : {"/v1/jobs", "/v1/workers", "/metrics", "/v1/jobs/j-000001"}) {
    auto res = http.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 401) << path;
    EXPECT_EQ(res->get_header_value("WWW-Authenticate"), "Bearer");
    EXPECT_EQ(http.Get(path, Bearer("wrong"))->status, 401) << path;
    EXPECT_EQ(http.Get(path, Bearer(kWorkerToken))->status, 403) << path;
  }
  EXPECT_EQ(http.Get("/v1/jobs", Bearer(kClientToken))->status, 200);
  // Health and the page itself need no token (the page asks for it).
  EXPECT_EQ(http.Get("/healthz")->status, 200);
  EXPECT_EQ(http.Get("/readyz")->status, 200);
  EXPECT_EQ(http.Get("/")->status, 200);

  // The CLI and a worker with the right tokens work; a worker without one
  // is refused at registration and says why.
  CommandResult cli = cluster.Cli({"list"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  CommandResult bare = RunCommand({BinDir() + "/retrain", "--server", cluster.address(), "list"});
  EXPECT_EQ(bare.exit_code, 1);
  EXPECT_THAT(bare.err, HasSubstr("UNAUTHENTICATED"));
  CommandResult worker = RunCommand(
      {BinDir() + "/retrain-worker", "--server", cluster.address(), "--unreachable_timeout_s", "5"},
      std::chrono::seconds(30));
  EXPECT_NE(worker.exit_code, 0);
  EXPECT_THAT(worker.err, HasSubstr("bearer token"));
}

TEST(OperationsTest, WithoutTokensTheServerStaysOnLoopback) {
  TempDir dir;
  CommandResult r = RunCommand(
      {BinDir() + "/retrain-server", "--listen", "0.0.0.0:0", "--state_dir", dir.path() + "/state"},
      std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("without tokens the server listens on loopback only"));
  r = RunCommand({BinDir() + "/retrain-server", "--listen", "127.0.0.1:0", "--state_dir",
                  dir.path() + "/state", "--client_token_file", dir.path() + "/missing"},
                 std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--client_token_file: cannot read the token file"));
}

TEST(OperationsTest, HttpJobViewsMatchGrpcAndMetricsMove) {
  TempDir dir;
  Cluster cluster(dir.path(), WithHttpAndTokens());
  cluster.StartServer();
  cluster.StartWorker(1);
  httplib::Client http("127.0.0.1", cluster.http_port());
  const auto auth = Bearer(kClientToken);
  // The worker has registered (over gRPC) once /v1/workers lists it.
  for (int i = 0; i < 200; ++i) {
    auto res = http.Get("/v1/workers", auth);
    if (res && res->body.find("\"id\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  // Before any build: every family is there, in the text format.
  auto res = http.Get("/metrics", auth);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
  const auto types = CheckExpositionFormat(res->body);
  for (const auto& [name, type] :
       std::map<std::string, std::string>{{"retrain_jobs", "gauge"},
                                          {"retrain_queue_length", "gauge"},
                                          {"retrain_jobs_in_memory", "gauge"},
                                          {"retrain_queue_wait_seconds", "summary"},
                                          {"retrain_workers", "gauge"},
                                          {"retrain_worker_free_memory_bytes", "gauge"},
                                          {"retrain_tasks_leased_total", "counter"},
                                          {"retrain_tasks_retried_total", "counter"},
                                          {"retrain_tasks_failed_total", "counter"},
                                          {"retrain_images_written_total", "counter"},
                                          {"retrain_images_skipped_total", "counter"},
                                          {"retrain_training_examples_per_second", "gauge"},
                                          {"retrain_training_loss", "gauge"},
                                          {"retrain_rpc_requests_total", "counter"},
                                          {"retrain_rpc_duration_seconds", "histogram"},
                                          {"retrain_http_requests_total", "counter"}}) {
    EXPECT_EQ(types.count(name) ? types.at(name) : "missing", type) << name;
  }
  auto before = Samples(res->body);
  EXPECT_EQ(before["retrain_workers{state=\"idle\"}"], 1);
  EXPECT_EQ(before["retrain_images_written_total"], 0);

  WriteImages(dir.path());
  const v1::Job built = BuildDataset(cluster, dir.path());
  ASSERT_EQ(built.state(), v1::JOB_STATE_SUCCEEDED) << built.error();

  // GET /v1/jobs/{id} is GetJob in protobuf's JSON mapping.
  res = http.Get("/v1/jobs/" + built.id(), auth);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  v1::Job from_http;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(res->body, &from_http).ok()) << res->body;
  v1::Job from_grpc;
  {
    grpc::ClientContext ctx;
    cluster.Authorize(ctx);
    v1::GetJobRequest req;
    req.set_job_id(built.id());
    ASSERT_TRUE(cluster.jobs().GetJob(&ctx, req, &from_grpc).ok());
  }
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(from_http, from_grpc))
      << from_http.DebugString() << "\nvs\n"
      << from_grpc.DebugString();
  EXPECT_THAT(res->body, HasSubstr("\"state\":\"JOB_STATE_SUCCEEDED\""));

  // GET /v1/jobs lists it, filters by state, and names a bad parameter.
  res = http.Get("/v1/jobs?state=succeeded&type=dataset_build", auth);
  ASSERT_EQ(res->status, 200);
  v1::ListJobsResponse listed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(res->body, &listed).ok());
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).id(), built.id());
  res = http.Get("/v1/jobs?state=RUNNING", auth);
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(res->body, &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 0);
  res = http.Get("/v1/jobs?state=sleeping", auth);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr("state: unknown value 'sleeping'"));
  res = http.Get("/v1/jobs/j-999999", auth);
  EXPECT_EQ(res->status, 404);
  EXPECT_THAT(res->body, HasSubstr("\"code\":5"));
  res = http.Get("/v1/workers", auth);
  ASSERT_EQ(res->status, 200);
  v1::ListWorkersResponse ws;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(res->body, &ws).ok());
  EXPECT_EQ(ws.workers_size(), 1);

  // The counters moved with the build.
  res = http.Get("/metrics", auth);
  CheckExpositionFormat(res->body);
  auto after = Samples(res->body);
  EXPECT_EQ(after["retrain_images_written_total"], 12);
  EXPECT_EQ(after["retrain_images_skipped_total"], 1);
  EXPECT_EQ(after["retrain_tasks_leased_total{kind=\"plan_shards\"}"], 1);
  EXPECT_GE(after["retrain_tasks_leased_total{kind=\"shard\"}"], 2);
  EXPECT_EQ(after["retrain_jobs{type=\"dataset_build\",state=\"succeeded\"}"], 1);
  EXPECT_EQ(after["retrain_queue_wait_seconds_count"], 1);
  EXPECT_GE(after["retrain_rpc_requests_total{code=\"OK\",method=\"/retrain.v1.WorkerService/"
                  "LeaseTask\"}"],
            3);
  EXPECT_GE(after["retrain_http_requests_total{code=\"400\",route=\"/v1/jobs\"}"], 1);
  EXPECT_GT(after["retrain_rpc_duration_seconds_count{method=\"/retrain.v1.JobService/GetJob\"}"],
            0);

  // A job's log and training series: none for a build, and ended; 404
  // naming an unknown job, 400 naming a bad parameter, 401 without a token.
  res = http.Get("/v1/jobs/" + built.id() + "/metrics", auth);
  ASSERT_EQ(res->status, 200);
  v1::GetJobMetricsResponse series;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(res->body, &series).ok()) << res->body;
  EXPECT_EQ(series.points_size(), 0);
  EXPECT_TRUE(series.job_ended());
  res = http.Get("/v1/jobs/" + built.id() + "/logs?offset=0&max_lines=10", auth);
  ASSERT_EQ(res->status, 200);
  v1::GetJobLogsResponse lines;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(res->body, &lines).ok()) << res->body;
  EXPECT_TRUE(lines.job_ended());
  for (const std::string what : {"metrics", "logs"}) {
    SCOPED_TRACE(what);
    res = http.Get("/v1/jobs/j-999999/" + what, auth);
    EXPECT_EQ(res->status, 404);
    EXPECT_THAT(res->body, HasSubstr("no job 'j-999999'"));
    res = http.Get("/v1/jobs/" + built.id() + "/" + what + "?offset=-1", auth);
    EXPECT_EQ(res->status, 400);
    EXPECT_THAT(res->body, HasSubstr("offset: must be a number from 0"));
    res = http.Get("/v1/jobs/" + built.id() + "/" + what + "?offset=ten", auth);
    EXPECT_EQ(res->status, 400);
    EXPECT_THAT(res->body, HasSubstr("offset: must be a number from 0"));
    res = http.Get("/v1/jobs/" + built.id() + "/" + what);
    EXPECT_EQ(res->status, 401);
  }
  res = http.Get("/v1/jobs/" + built.id() + "/metrics?max_points=many", auth);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr("max_points: must be a number from 0"));
  res = http.Get("/v1/jobs/" + built.id() + "/logs?max_lines=99999999999", auth);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr("max_lines: must be a number from 0"));

  // The pages are self-contained HTML files, served without a token.
  res = http.Get("/jobs/" + built.id());
  ASSERT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/html"));
  EXPECT_THAT(res->body, HasSubstr("/metrics"));
  EXPECT_THAT(res->body, ::testing::Not(HasSubstr("http://")));
  EXPECT_THAT(res->body, ::testing::Not(HasSubstr("https://")));
  res = http.Get("/");
  ASSERT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/html"));
  EXPECT_THAT(res->body, HasSubstr("/v1/jobs"));
  EXPECT_THAT(res->body, ::testing::Not(HasSubstr("http://")));
  EXPECT_THAT(res->body, ::testing::Not(HasSubstr("https://")));
}

// ListJobs, every page, newest first: the ids.
std::vector<std::string> ListIds(Cluster& cluster, int page_size,
                                 std::vector<v1::JobState> states = {}) {
  std::vector<std::string> ids;
  v1::ListJobsRequest req;
  req.set_page_size(page_size);
  for (auto s : states) req.add_states(s);
  for (int page = 0; page < 100; ++page) {
    v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    cluster.Authorize(ctx);
    const grpc::Status s = cluster.jobs().ListJobs(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    for (const auto& j : resp.jobs()) ids.push_back(j.id());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  return ids;
}

TEST(OperationsTest, OldFinishedJobsLeaveMemoryAndStayReadable) {
  TempDir dir;
  ClusterOptions options;
  options.http = true;
  options.server_args = {"--max_finished_jobs_in_memory", "2"};
  Cluster cluster(dir.path(), options);
  cluster.StartServer();
  WriteImages(dir.path());
  // Five builds, each cancelled (no worker runs them), then one left queued.
  std::vector<std::string> ids;
  v1::SubmitDatasetBuildRequest first;
  for (int i = 0; i < 6; ++i) {
    v1::SubmitDatasetBuildRequest req;
    req.mutable_spec()->set_train_directory(dir.path() + "/train");
    req.mutable_spec()->set_output_directory(dir.path() + "/out" + std::to_string(i));
    req.set_request_id("build-" + std::to_string(i));
    if (i == 0) first = req;
    v1::Job job;
    grpc::ClientContext ctx;
    ASSERT_TRUE(cluster.jobs().SubmitDatasetBuild(&ctx, req, &job).ok());
    ids.push_back(job.id());
    if (i == 5) break;
    v1::CancelJobRequest cancel;
    cancel.set_job_id(job.id());
    grpc::ClientContext cctx;
    ASSERT_TRUE(cluster.jobs().CancelJob(&cctx, cancel, &job).ok());
  }
  const std::vector<std::string> newest_first(ids.rbegin(), ids.rend());
  const std::vector<std::string> cancelled(ids.rbegin() + 1, ids.rend());

  // Empty until the page is served: a coordinator restarted on PostgreSQL
  // stands by (answering 503) until it leads, which the loop below waits out.
  auto metrics = [&] {
    httplib::Client http("127.0.0.1", cluster.http_port());  // a new port after a restart
    auto res = http.Get("/metrics");
    return res && res->status == 200 ? Samples(res->body) : std::map<std::string, double>{};
  };
  auto check = [&](const std::string& when) {
    SCOPED_TRACE(when);
    // The client's channel reconnects after a restart.
    for (int i = 0; i < 100 && !cluster.JobEnded(ids[0]); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    // The queued job and the two newest finished ones stay in memory; the
    // metrics still count every job.
    std::map<std::string, double> m;
    for (int i = 0; i < 100; ++i) {
      m = metrics();
      if (m["retrain_jobs_in_memory"] == 3) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(m["retrain_jobs_in_memory"], 3);
    EXPECT_EQ(m["retrain_jobs{type=\"dataset_build\",state=\"cancelled\"}"], 5);
    // Every job is listed, newest first, across pages that straddle memory
    // and the database, and filtered by state.
    EXPECT_EQ(ListIds(cluster, 2), newest_first);
    EXPECT_EQ(ListIds(cluster, 50), newest_first);
    EXPECT_EQ(ListIds(cluster, 1, {v1::JOB_STATE_CANCELLED}), cancelled);
    EXPECT_EQ(ListIds(cluster, 10, {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING}).size(), 1u);
    // The oldest is read back whole.
    v1::GetJobRequest get;
    get.set_job_id(ids[0]);
    v1::Job job;
    grpc::ClientContext ctx;
    ASSERT_TRUE(cluster.jobs().GetJob(&ctx, get, &job).ok());
    EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
    EXPECT_GE(job.history_size(), 2);
    httplib::Client http("127.0.0.1", cluster.http_port());
    auto res = http.Get("/v1/jobs/" + ids[0]);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_THAT(res->body, HasSubstr("JOB_STATE_CANCELLED"));
    // Cancelling it again, retrying its submit and watching it answer as
    // they would have while it was in memory.
    v1::CancelJobRequest cancel;
    cancel.set_job_id(ids[0]);
    grpc::ClientContext cctx;
    EXPECT_TRUE(cluster.jobs().CancelJob(&cctx, cancel, &job).ok());
    grpc::ClientContext sctx;
    ASSERT_TRUE(cluster.jobs().SubmitDatasetBuild(&sctx, first, &job).ok());
    EXPECT_EQ(job.id(), ids[0]);
    v1::WatchJobRequest watch;
    watch.set_job_id(ids[0]);
    grpc::ClientContext wctx;
    auto stream = cluster.jobs().WatchJob(&wctx, watch);
    v1::JobUpdate update;
    ASSERT_TRUE(stream->Read(&update));
    EXPECT_EQ(update.job().state(), v1::JOB_STATE_CANCELLED);
    EXPECT_FALSE(stream->Read(&update));
    EXPECT_TRUE(stream->Finish().ok());
    // A job that never was is still NOT_FOUND.
    get.set_job_id("j-999999");
    grpc::ClientContext nctx;
    EXPECT_EQ(cluster.jobs().GetJob(&nctx, get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  };
  check("running");
  cluster.KillServer(SIGTERM);
  cluster.StartServer(cluster.port());
  check("after a restart");
}

TEST(OperationsTest, TheStatusPageShowsJobsAndWorkersInChromium) {
  TempDir dir;
  ClusterOptions options;
  options.http = true;
  Cluster cluster(dir.path(), options);
  cluster.StartServer();
  cluster.StartWorker(1);
  WriteImages(dir.path());
  const v1::Job built = BuildDataset(cluster, dir.path());
  ASSERT_EQ(built.state(), v1::JOB_STATE_SUCCEEDED) << built.error();

  const std::string dom = RenderedPage(cluster.http_url() + "/", dir.path() + "/chromium");
  // The job's row: id, type, state, a full progress bar, its counts.
  const std::regex row("<tr data-job=\"" + built.id() + "\">(.*?)</tr>");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, row)) << dom;
  const std::string cells = m[1];
  EXPECT_THAT(cells, HasSubstr("dataset build"));
  EXPECT_THAT(cells, HasSubstr("SUCCEEDED"));
  EXPECT_THAT(cells, HasSubstr("aria-valuenow=\"100\""));
  EXPECT_THAT(cells, HasSubstr("width: 100%"));
  // Its id links to its page.
  EXPECT_THAT(cells, HasSubstr("<a href=\"/jobs/" + built.id() + "\">" + built.id() + "</a>"));
  // The worker's row and the summary line.
  EXPECT_THAT(dom, HasSubstr("<td>w-1</td>"));
  EXPECT_THAT(dom, HasSubstr("IDLE"));
  EXPECT_THAT(dom, HasSubstr("1 jobs, 1 workers; updated"));
}

// The rows of the table with this id in a rendered page, each as its cells'
// texts joined by " | ".
std::vector<std::string> TableRows(const std::string& dom, const std::string& id) {
  std::smatch table;
  if (!std::regex_search(dom, table,
                         std::regex("<table id=\"" + id + "\"[^>]*>([\\s\\S]*?)</table>"))) {
    ADD_FAILURE() << "no table '" << id << "' in " << dom;
    return {};
  }
  const std::string body = table[1];
  static const std::regex kRow("<tr[^>]*>([\\s\\S]*?)</tr>");
  static const std::regex kCell("<td[^>]*>([\\s\\S]*?)</td>");
  std::vector<std::string> out;
  for (std::sregex_iterator r(body.begin(), body.end(), kRow), end; r != end; ++r) {
    const std::string row = (*r)[1];
    std::string cells;
    for (std::sregex_iterator c(row.begin(), row.end(), kCell); c != end; ++c) {
      cells += (cells.empty() ? "" : " | ") + (*c)[1].str();
    }
    if (!cells.empty()) out.push_back(cells);
  }
  return out;
}

TEST(OperationsTest, ADatasetBuildsPageShowsItsClassesShardsSkippedFilesAndHistoryInChromium) {
  TempDir dir;
  ClusterOptions options;
  options.http = true;
  Cluster cluster(dir.path(), options);
  cluster.StartServer();
  cluster.StartWorker(1);
  WriteImages(dir.path());
  const v1::Job built = BuildDataset(cluster, dir.path());
  ASSERT_EQ(built.state(), v1::JOB_STATE_SUCCEEDED) << built.error();

  const std::string dom =
      RenderedPage(cluster.http_url() + "/jobs/" + built.id(), dir.path() + "/chromium");
  EXPECT_THAT(dom, HasSubstr("Job " + built.id() + " \u2014 dataset build"));
  EXPECT_THAT(dom, HasSubstr("ended; read"));
  // Records per class and split, with their total.
  EXPECT_THAT(TableRows(dom, "classes"),
              ::testing::ElementsAre(HasSubstr("| cat | 6 | 0"), HasSubstr("| dog | 6 | 0"),
                                     HasSubstr("all | 12 | 0")));
  // Each shard, with its records and checksum.
  std::vector<std::string> shards;
  for (const auto& shard : built.dataset_build_result().train().shards()) {
    shards.push_back("train | " + shard.file() + " | " + std::to_string(shard.num_records()));
  }
  ASSERT_FALSE(shards.empty());
  const std::vector<std::string> shard_rows = TableRows(dom, "shards");
  ASSERT_EQ(shard_rows.size(), shards.size());
  for (size_t i = 0; i < shards.size(); ++i) {
    EXPECT_THAT(shard_rows[i], HasSubstr(shards[i]));
    EXPECT_THAT(shard_rows[i], HasSubstr(built.dataset_build_result().train().shards(i).sha256()));
  }
  // The file that is not an image, and why.
  EXPECT_THAT(TableRows(dom, "skipped"),
              ::testing::ElementsAre(HasSubstr("train | dog/broken.jpg | not an image")));
  // The history, every event with its reason, the last one first to last.
  const std::vector<std::string> history = TableRows(dom, "history");
  ASSERT_EQ(history.size(), static_cast<size_t>(built.history_size()));
  for (int i = 0; i < built.history_size(); ++i) {
    EXPECT_THAT(history[i], HasSubstr(built.history(i).reason()));
  }
  EXPECT_THAT(history.back(), HasSubstr("SUCCEEDED"));
  // A build has no training series and no log.
  EXPECT_THAT(dom, HasSubstr("<section id=\"charts-section\" hidden=\"\">"));
  EXPECT_THAT(dom, HasSubstr("<section id=\"log-section\" hidden=\"\">"));

  // A job that never was is named as such.
  const std::string missing =
      RenderedPage(cluster.http_url() + "/jobs/j-999999", dir.path() + "/chromium");
  EXPECT_THAT(missing, HasSubstr("the server says: job_id: no job 'j-999999'"));
}

TEST(OperationsTest, TheStatusPageAsksForTheTokenInChromium) {
  TempDir dir;
  Cluster cluster(dir.path(), WithHttpAndTokens());
  cluster.StartServer();
  const std::string dom = RenderedPage(cluster.http_url() + "/", dir.path() + "/chromium");
  EXPECT_THAT(dom, HasSubstr("this server needs its client token"));
  EXPECT_THAT(dom, HasSubstr("id=\"login\" style=\"display: block;\""));
  EXPECT_THAT(dom, ::testing::Not(HasSubstr("<td>w-")));
  // A job's page asks alike.
  const std::string job =
      RenderedPage(cluster.http_url() + "/jobs/j-000001", dir.path() + "/chromium");
  EXPECT_THAT(job, HasSubstr("this server needs its client token"));
  EXPECT_THAT(job, HasSubstr("id=\"login\" style=\"display: block;\""));
}

// TLS on gRPC and HTTP, and mutual TLS for workers: a worker must present a
// certificate signed by the server's client CA; one without, with an
// expired one or with one from another CA is kept out.
TEST(OperationsTest, TlsAndMutualTlsForWorkers) {
  TempDir dir;
  const std::string d = dir.path();
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(d + "/" + name) << bytes;
    return d + "/" + name;
  };
  const PemPair ca = MakeCa("retrain test CA");
  const PemPair server = MakeCertificate(ca, "retrain-server");
  const PemPair worker = MakeCertificate(ca, "worker-1");
  const PemPair expired = MakeCertificate(ca, "worker-old", -7200, -3600);
  const PemPair stranger = MakeCertificate(MakeCa("another CA"), "worker-x");
  const std::string ca_file = write("ca.pem", ca.cert);
  const std::string client_token = write("client.token", kClientToken);
  const std::string worker_token = write("worker.token", kWorkerToken);
  auto server_process = Process::Start({BinDir() + "/retrain-server",
                                        "--listen",
                                        "127.0.0.1:0",
                                        "--port_file",
                                        d + "/port",
                                        "--http_listen",
                                        "127.0.0.1:0",
                                        "--http_port_file",
                                        d + "/http_port",
                                        "--state_dir",
                                        d + "/state",
                                        "--data_root",
                                        d,
                                        "--client_token_file",
                                        client_token,
                                        "--worker_token_file",
                                        worker_token,
                                        "--tls_cert_file",
                                        write("server.pem", server.cert),
                                        "--tls_key_file",
                                        write("server.key", server.key),
                                        "--tls_client_ca_file",
                                        ca_file},
                                       d + "/server.log");
  for (int i = 0; i < 600 && !(std::filesystem::exists(d + "/port") &&
                               std::filesystem::exists(d + "/http_port"));
       ++i) {
    ASSERT_TRUE(server_process->Running()) << ReadAll(d + "/server.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string target = "127.0.0.1:" + std::to_string(std::stoi(ReadAll(d + "/port")));

  // A client over TLS with the token gets in; one in plaintext does not.
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca.cert;
  auto jobs = v1::JobService::NewStub(grpc::CreateChannel(target, grpc::SslCredentials(tls)));
  auto list_workers = [&] {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kClientToken);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListWorkersResponse resp;
    grpc::Status s = jobs->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.workers_size();
  };
  EXPECT_EQ(list_workers(), 0);
  CommandResult plain = RunCommand({BinDir() + "/retrain", "--server", target, "--token_file",
                                    client_token, "--timeout_s", "3", "workers"});
  EXPECT_EQ(plain.exit_code, 3) << plain.err;  // unreachable: no TLS
  CommandResult cli = RunCommand({BinDir() + "/retrain", "--server", target, "--token_file",
                                  client_token, "--tls_ca_file", ca_file, "workers"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;

  // Workers: the right certificate registers; none, an expired one or one
  // from another CA does not.
  auto run_worker = [&](const std::vector<std::string>& tls_args) {
    std::vector<std::string> argv{
        BinDir() + "/retrain-worker", "--server", target, "--token_file", worker_token,
        "--unreachable_timeout_s",    "3"};
    argv.insert(argv.end(), tls_args.begin(), tls_args.end());
    return RunCommand(argv, std::chrono::seconds(30));
  };
  CommandResult no_cert = run_worker({"--tls_ca_file", ca_file});
  EXPECT_NE(no_cert.exit_code, 0);
  EXPECT_THAT(no_cert.err, HasSubstr("mutual TLS"));
  for (const PemPair* bad : {&expired, &stranger}) {
    CommandResult r =
        run_worker({"--tls_ca_file", ca_file, "--tls_cert_file", write("bad.pem", bad->cert),
                    "--tls_key_file", write("bad.key", bad->key)});
    EXPECT_NE(r.exit_code, 0) << r.err;
  }
  EXPECT_EQ(list_workers(), 0);
  auto good = Process::Start(
      {BinDir() + "/retrain-worker", "--server", target, "--token_file", worker_token,
       "--tls_ca_file", ca_file, "--tls_cert_file", write("worker.pem", worker.cert),
       "--tls_key_file", write("worker.key", worker.key)},
      d + "/worker.log");
  int registered = 0;
  for (int i = 0; i < 100 && registered == 0; ++i) {
    registered = list_workers();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(registered, 1) << ReadAll(d + "/worker.log");

  // HTTPS with the same certificate.
  httplib::SSLClient https("127.0.0.1", std::stoi(ReadAll(d + "/http_port")));
  https.set_ca_cert_path(ca_file.c_str());
  https.enable_server_certificate_verification(true);
  auto res = https.Get("/healthz");
  ASSERT_TRUE(res) << "HTTPS error " << static_cast<int>(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(https.Get("/v1/workers", Bearer(kClientToken))->status, 200);
  httplib::Client plain_http("127.0.0.1", std::stoi(ReadAll(d + "/http_port")));
  EXPECT_FALSE(plain_http.Get("/healthz")) << "plain HTTP answered on the HTTPS port";
}

// Limits: queued jobs per client, WatchJob streams, request size.
TEST(OperationsTest, LimitsRefuseWithTheFlagToRaise) {
  TempDir dir;
  ClusterOptions options;
  options.server_args = {
      "--max_pending_jobs_per_client", "2", "--max_watch_streams", "1", "--max_request_mib", "1"};
  Cluster cluster(dir.path(), options);
  cluster.StartServer();  // no worker: builds wait for one
  WriteImages(dir.path());
  auto submit = [&](const std::string& request_id, const std::string& out) {
    v1::SubmitDatasetBuildRequest req;
    req.mutable_spec()->set_train_directory(dir.path() + "/train");
    req.mutable_spec()->set_output_directory(dir.path() + "/" + out);
    req.set_request_id(request_id);
    v1::Job job;
    grpc::ClientContext ctx;
    grpc::Status s = cluster.jobs().SubmitDatasetBuild(&ctx, req, &job);
    return std::make_pair(s, job);
  };
  auto first = submit("a", "out-a");
  ASSERT_TRUE(first.first.ok()) << first.first.error_message();
  EXPECT_EQ(first.second.submitter(), "ipv4:127.0.0.1");
  ASSERT_TRUE(submit("b", "out-b").first.ok());
  auto third = submit("c", "out-c");
  EXPECT_EQ(third.first.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(third.first.error_message(), HasSubstr("has 2 unfinished jobs (queued or running)"));
  EXPECT_THAT(third.first.error_message(), HasSubstr("--max_pending_jobs_per_client"));
  // A retried submit is not a new job: it still answers.
  auto again = submit("a", "out-a");
  ASSERT_TRUE(again.first.ok()) << again.first.error_message();
  EXPECT_EQ(again.second.id(), first.second.id());
  // Cancelling one makes room.
  ASSERT_EQ(cluster.Cli({"cancel", first.second.id()}).exit_code, 0);
  EXPECT_TRUE(submit("c", "out-c").first.ok());

  // One WatchJob stream at a time.
  grpc::ClientContext watching;
  v1::WatchJobRequest watch;
  watch.set_job_id(submit("b", "out-b").second.id());
  auto stream = cluster.jobs().WatchJob(&watching, watch);
  v1::JobUpdate update;
  ASSERT_TRUE(stream->Read(&update));  // the first snapshot: the stream is open
  grpc::ClientContext second;
  auto refused = cluster.jobs().WatchJob(&second, watch);
  while (refused->Read(&update)) {
  }
  grpc::Status s = refused->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("--max_watch_streams 1"));
  // The job's end reaches the open stream at once, not after the pause that
  // coalesces progress updates (200 ms after each update sent).
  v1::CancelJobRequest cancel;
  cancel.set_job_id(watch.job_id());
  grpc::ClientContext cctx;
  v1::Job cancelled;
  ASSERT_TRUE(cluster.jobs().CancelJob(&cctx, cancel, &cancelled).ok());
  const auto cancelled_at = std::chrono::steady_clock::now();
  while (stream->Read(&update) && update.job().state() != v1::JOB_STATE_CANCELLED) {
  }
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  cancelled_at)
                .count(),
            150);
  EXPECT_EQ(update.job().state(), v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(stream->Read(&update));
  EXPECT_TRUE(stream->Finish().ok());

  // A request over --max_request_mib.
  v1::SubmitDatasetBuildRequest big;
  big.mutable_spec()->set_train_directory(std::string(2 << 20, 'x'));
  grpc::ClientContext ctx;
  v1::Job job;
  EXPECT_EQ(cluster.jobs().SubmitDatasetBuild(&ctx, big, &job).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// Every CLI command with --output json prints protobuf's JSON mapping of
// its reply on stdout, and a failure a JSON error on stderr.
// The nice value (field 19 of /proc/PID/stat) of every thread of `pid`.
std::vector<int> NiceOfEachThread(pid_t pid) {
  std::vector<int> nice;
  for (const auto& t :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream in(t.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields after the command, which is in parentheses and may hold spaces.
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 19 && fields >> field; ++i) {
    }
    nice.push_back(std::stoi(field));
  }
  return nice;
}

// A worker's batch work yields the cores to the coordinator and the CLI on
// a shared machine: every thread of it runs at nice 10 by default (--nice).
TEST(OperationsTest, AWorkerYieldsTheCpuToTheMachinesOtherProcesses) {
  TempDir dir;
  Cluster cluster(dir.path());
  cluster.StartServer();
  const pid_t worker = cluster.StartWorker(1).pid();
  // Registered: its loops have started.
  v1::ListWorkersResponse workers;
  for (int i = 0; i < 200 && workers.workers_size() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    grpc::ClientContext ctx;
    ASSERT_TRUE(cluster.jobs().ListWorkers(&ctx, v1::ListWorkersRequest(), &workers).ok());
  }
  ASSERT_EQ(workers.workers_size(), 1);
  const std::vector<int> nice = NiceOfEachThread(worker);
  EXPECT_GT(nice.size(), 2u) << "the task, heartbeat and check loops, and gRPC's";
  EXPECT_THAT(nice, ::testing::Each(10));
  EXPECT_EQ(getpriority(PRIO_PROCESS, 0), 0) << "the test itself is not lowered";
}

TEST(OperationsTest, AWorkersHealthFileAgesOnlyWhileTheCoordinatorIsAway) {
  TempDir dir;
  Cluster cluster(dir.path());
  cluster.StartServer();
  const std::string health = dir.path() + "/worker.health";
  // As the worker image sets it: from the environment, which the worker inherits.
  ASSERT_EQ(setenv("RETRAIN_WORKER_HEALTH_FILE", health.c_str(), 1), 0);
  cluster.StartWorker(1);
  unsetenv("RETRAIN_WORKER_HEALTH_FILE");
  auto modified = [&] {
    struct stat st {};
    if (stat(health.c_str(), &st) != 0) return std::chrono::nanoseconds(0);
    return std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec);
  };
  ASSERT_TRUE(Eventually([&] { return modified().count() != 0; }, std::chrono::seconds(10)))
      << health << " never appeared";
  const auto first = modified();
  // Heartbeats every 300 ms touch it.
  EXPECT_TRUE(Eventually([&] { return modified() > first; }, std::chrono::seconds(2)))
      << "not touched again in 2 s";
  // No coordinator, no acknowledged heartbeat: the file keeps its age.
  cluster.KillServer();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const auto last = modified();
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(modified(), last) << "touched with no coordinator to acknowledge a heartbeat";
}

TEST(OperationsTest, AServerRunningAsItsPidNamespacesInitStopsOnSigterm) {
  // As in a container, where it is PID 1: the kernel drops a signal that
  // such a process neither handles nor blocks in the thread it reaches.
  TempDir dir;
  const std::string port_file = dir.path() + "/port";
  const std::string log = dir.path() + "/server.log";
  auto unshare =
      Process::Start({"/usr/bin/unshare", "--pid", "--fork", "--kill-child",
                      BinDir() + "/retrain-server", "--listen", "127.0.0.1:0", "--port_file",
                      port_file, "--state_dir", dir.path() + "/state", "--data_root", dir.path()},
                     log);
  ASSERT_TRUE(Eventually([&] { return !ReadAll(port_file).empty(); }, std::chrono::seconds(30)))
      << ReadAll(log);
  // The server is unshare's one child.
  const std::string self = std::to_string(unshare->pid());
  const std::string children = ReadAll("/proc/" + self + "/task/" + self + "/children");
  ASSERT_FALSE(children.empty());
  ASSERT_EQ(kill(std::stoi(children), SIGTERM), 0);
  ASSERT_TRUE(Eventually([&] { return !unshare->Running(); }, std::chrono::seconds(10)))
      << "still running 10 s after SIGTERM: " << ReadAll(log);
  EXPECT_EQ(unshare->Wait(), 0);
  EXPECT_THAT(ReadAll(log), HasSubstr("signal 15: shutting down"));
}

TEST(OperationsTest, EveryCommandPrintsJson) {
  TempDir dir;
  Cluster cluster(dir.path(), WithHttpAndTokens());
  cluster.StartServer();
  cluster.StartWorker(1);
  WriteImages(dir.path());
  auto json = [&](std::vector<std::string> args, auto* message) {
    args.insert(args.end(), {"--output", "json"});
    CommandResult r = cluster.Cli(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << ": " << r.err;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, message).ok())
        << args[0] << " printed: " << r.out;
    return r;
  };
  v1::Job built;
  json({"build-dataset", "--train_directory", dir.path() + "/train", "--output_directory",
        dir.path() + "/out", "--wait"},
       &built);
  EXPECT_EQ(built.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(built.dataset_build_result().train().num_records(), 12);
  v1::Job status;
  json({"status", built.id()}, &status);
  EXPECT_EQ(status.id(), built.id());
  EXPECT_GT(status.history_size(), 2);
  v1::Job watched;
  json({"watch", built.id()}, &watched);
  EXPECT_EQ(watched.state(), v1::JOB_STATE_SUCCEEDED);
  v1::ListJobsResponse listed;
  json({"list"}, &listed);
  EXPECT_EQ(listed.jobs_size(), 1);
  v1::ListWorkersResponse workers;
  json({"workers"}, &workers);
  EXPECT_EQ(workers.workers_size(), 1);
  v1::GetJobLogsResponse logs;
  json({"logs", built.id()}, &logs);
  v1::GetJobMetricsResponse series;
  json({"metrics", built.id()}, &series);
  EXPECT_TRUE(series.job_ended());
  v1::Job validated;
  json({"train", "--data_dir", dir.path() + "/out", "--train_dir", dir.path() + "/run", "--model",
        "small", "--max_steps", "10", "--validate_only"},
       &validated);
  EXPECT_EQ(validated.training().model(), "small");
  // With no worker left, a second build waits: cancel it.
  cluster.workers()[0]->Signal(SIGKILL);
  cluster.workers()[0]->Wait();
  v1::Job queued;
  CommandResult r = json({"build-dataset", "--train_directory", dir.path() + "/train",
                          "--output_directory", dir.path() + "/out2"},
                         &queued);
  v1::Job cancelled;
  json({"cancel", queued.id()}, &cancelled);
  EXPECT_EQ(cancelled.id(), queued.id());

  // Failures: a JSON error on stderr with the exit code.
  r = cluster.Cli({"status", "j-999999", "--output", "json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("{\"error\":{\"code\":\"NOT_FOUND\",\"message\":"));
  EXPECT_THAT(r.err, HasSubstr("\"exit_code\":1}"));
  r = RunCommand({BinDir() + "/retrain", "--server", "127.0.0.1:1", "--timeout_s", "2", "list",
                  "--output", "json"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("\"code\":\"UNAVAILABLE\""));
  EXPECT_THAT(r.err, HasSubstr("cannot reach the server"));
}

}  // namespace
}  // namespace retrain::testing
