// retrain: the command-line client of the retrain coordinator.
//
// Exit codes: 0 success; 1 the request was refused or failed; 2 usage error;
// 3 the server cannot be reached; 4 the job ended FAILED; 5 the job ended
// CANCELLED.
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <random>
#include <thread>

#include "absl/strings/str_format.h"
#include "client/job_view.h"
#include "client/training_flags.h"
#include "common/bearer_token.h"
#include "common/coordinator_channel.h"
#include "common/grpc_status.h"
#include "common/job_states.h"
#include "common/tls_credentials.h"
#include "dataset/layout.h"
#include "retrain/v1/job_service.grpc.pb.h"

namespace {

namespace v1 = retrain::v1;
using retrain::client::TrainingFlags;

enum ExitCode { kOk = 0, kRefused = 1, kUsage = 2, kUnreachable = 3, kJobFailed = 4,
                kJobCancelled = 5 };

struct Globals {
  std::string server = "127.0.0.1:50051";
  std::string output = "text";
  int timeout_s = 30;
};

// A gRPC error as one readable line on stderr (a JSON object there with
// --output json), and the exit code it maps to.
int ReportError(const grpc::Status& s, const Globals& g) {
  static const char* kCodes[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                 "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                 "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int code = static_cast<int>(s.error_code());
  const char* code_name = code >= 0 && code <= 16 ? kCodes[code] : "UNKNOWN";
  const bool unreachable = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  const std::string message =
      unreachable ? "cannot reach the server at " + g.server + ": " + s.error_message() +
                        " (start retrain-server, or set --server / RETRAIN_SERVER)"
                  : s.error_message();
  const int exit_code = unreachable ? kUnreachable : kRefused;
  if (g.output == "json") {
    std::cerr << retrain::client::ErrorJson(code_name, message, exit_code) << "\n";
  } else if (unreachable) {
    std::cerr << "retrain: " << message << "\n";
  } else {
    std::cerr << "retrain: error: " << message << " [" << code_name << "]\n";
  }
  return exit_code;
}

// The client token every call carries (--token_file or RETRAIN_TOKEN; "" for
// a server without tokens). Set once, before the first call.
std::string& Token() {
  static std::string token;
  return token;
}

void AddToken(grpc::ClientContext& ctx) {
  if (!Token().empty()) ctx.AddMetadata("authorization", retrain::BearerValue(Token()));
}

// Whether --server names several coordinators: calls then wait, within
// their deadline, for one to lead (a failover) instead of failing at once.
bool& SeveralCoordinators() {
  static bool several = false;
  return several;
}

std::unique_ptr<grpc::ClientContext> Context(int timeout_s) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  if (SeveralCoordinators()) ctx->set_wait_for_ready(true);
  AddToken(*ctx);
  return ctx;
}

std::string Absolute(const std::string& path) {
  if (path.empty()) return path;
  return std::filesystem::absolute(path).lexically_normal().string();
}

std::string RandomRequestId() {
  std::random_device rd;
  return absl::StrFormat("cli-%08x%08x", rd(), rd());
}

int ExitFor(const v1::Job& job) {
  switch (job.state()) {
    case v1::JOB_STATE_SUCCEEDED:
      return kOk;
    case v1::JOB_STATE_CANCELLED:
      return kJobCancelled;
    default:
      return kJobFailed;
  }
}

void PrintJob(const v1::Job& job, const Globals& g) {
  if (g.output == "json") {
    std::cout << retrain::client::ToJson(job) << "\n";
  } else {
    std::cout << retrain::client::JobSummary(job);
  }
}

// Follows a job until it ends, showing progress on stderr: a bar redrawn in
// place on a terminal, a plain line per phase or every 10 s otherwise.
int Watch(v1::JobService::Stub& stub, const std::string& job_id, const Globals& g) {
  const bool tty = isatty(STDERR_FILENO) && g.output != "json";
  v1::Job last;
  std::string last_phase;
  auto last_line = std::chrono::steady_clock::now();
  int reconnects = 0;
  while (true) {
    grpc::ClientContext ctx;
    AddToken(ctx);
    v1::WatchJobRequest req;
    req.set_job_id(job_id);
    auto reader = stub.WatchJob(&ctx, req);
    v1::JobUpdate update;
    while (reader->Read(&update)) {
      reconnects = 0;
      last = update.job();
      const auto& p = last.progress();
      const auto now = std::chrono::steady_clock::now();
      if (tty) {
        std::cerr << "\r\033[K" << retrain::client::ProgressLine(last) << std::flush;
      } else if (g.output != "json" &&
                 (p.phase() != last_phase || now - last_line > std::chrono::seconds(10))) {
        std::cerr << retrain::client::ProgressLine(last) << "\n";
        last_line = now;
      }
      last_phase = p.phase();
    }
    grpc::Status s = reader->Finish();
    if (tty) std::cerr << "\r\033[K";
    if (s.ok() && retrain::IsFinalState(last.state())) break;
    // The coordinator went away (restart): follow the job again once it is back.
    if ((retrain::CoordinatorWentAway(s) || s.ok()) && ++reconnects <= 60) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    return ReportError(s, g);
  }
  PrintJob(last, g);
  return ExitFor(last);
}

// How long a submit waits for the workers' check of the request (a
// build's paths and labels, a training's dataset and checkpoints) before it
// reports the job as submitted.
constexpr auto kCheckWait = std::chrono::seconds(15);

// Follows a job until its request has been checked (Job.request_checked),
// it ends, or `deadline` passes; the job as last seen.
v1::Job WaitForCheck(v1::JobService::Stub& stub, v1::Job job,
                     std::chrono::system_clock::time_point deadline) {
  while (!job.request_checked() && !retrain::IsFinalState(job.state()) &&
         std::chrono::system_clock::now() < deadline) {
    grpc::ClientContext ctx;
    AddToken(ctx);
    ctx.set_deadline(deadline);
    v1::WatchJobRequest req;
    req.set_job_id(job.id());
    auto reader = stub.WatchJob(&ctx, req);
    v1::JobUpdate update;
    while (reader->Read(&update)) {
      job = update.job();
      if (job.request_checked() || retrain::IsFinalState(job.state())) ctx.TryCancel();
    }
    const grpc::Status st = reader->Finish();
    // Only a coordinator away for a while (a restart) is waited out; Watch
    // reports anything else. The stream cancelled above ends CANCELLED too:
    // the loop's condition ends the wait then.
    if (!st.ok() && !retrain::CoordinatorWentAway(st)) break;
    if (!job.request_checked() && !retrain::IsFinalState(job.state())) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  return job;
}

// Submits with `call` (retrying while the server is unavailable; the
// request id makes retries safe), waits for the workers' check of the
// request, which reports a refusal as an error line as the submission
// itself would, then prints the job, or follows it.
// `what_is_valid`, when given, says what a valid request would do.
template <typename Call>
int SubmitAndFollow(v1::JobService::Stub& stub, const Globals& g, bool validate_only, bool wait,
                    Call call,
                    const std::function<std::string(const v1::Job&)>& what_is_valid = nullptr) {
  v1::Job job;
  grpc::Status st;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto ctx = Context(g.timeout_s);
    ctx->set_wait_for_ready(attempt > 0);
    st = call(ctx.get(), &job);
    if (!retrain::CoordinatorWentAway(st)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500 << attempt));
  }
  if (!st.ok()) return ReportError(st, g);
  if (g.output == "json" && (validate_only || !wait)) {
    std::cout << retrain::client::ToJson(job) << "\n";
    return kOk;
  }
  if (validate_only) {
    std::cout << "request is valid" << (what_is_valid ? ": " + what_is_valid(job) : "") << "\n";
    return kOk;
  }
  const auto checked_by = wait ? std::chrono::system_clock::time_point::max()
                               : std::chrono::system_clock::now() + kCheckWait;
  job = WaitForCheck(stub, job, checked_by);
  if (job.error_code() != 0) {
    return ReportError(grpc::Status(static_cast<grpc::StatusCode>(job.error_code()),
                                    job.error() + " (job " + job.id() + ")"),
                       g);
  }
  if (!wait) {
    std::cout << "submitted " << job.id() << " (follow it with: retrain watch " << job.id()
              << ")\n";
    if (!job.request_checked()) {
      std::cerr << "retrain: no worker has checked its paths yet (are workers running?)\n";
    }
    return kOk;
  }
  if (g.output != "json") std::cerr << "submitted " << job.id() << "\n";
  return Watch(stub, job.id(), g);
}

// Reads a job's log or series page by page from its start, printing each
// page (`print` in text, the page itself as JSON); with `follow`, keeps
// reading until the job ends. `read(offset, &page)` makes the call; `count`
// says how many lines or points a page holds.
template <typename Page, typename Read, typename Count, typename Print>
int ReadFromStart(const Read& read, const Count& count, const Print& print, bool follow,
                  const Globals& g) {
  int64_t offset = 0;
  while (true) {
    Page page;
    if (auto st = read(offset, &page); !st.ok()) {
      if (follow && retrain::CoordinatorWentAway(st)) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      return ReportError(st, g);
    }
    if (g.output == "json") {
      if (count(page) > 0 || !follow) std::cout << retrain::client::ToJson(page) << "\n";
    } else {
      print(page);
    }
    std::cout << std::flush;
    offset = page.next_offset();
    if (count(page) > 0) continue;
    if (!follow || page.job_ended()) return kOk;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// Prints a job's trainer log; with `follow`, keeps printing new lines until
// the job ends.
int Logs(v1::JobService::Stub& stub, const std::string& job_id, bool follow, const Globals& g) {
  return ReadFromStart<v1::GetJobLogsResponse>(
      [&](int64_t offset, v1::GetJobLogsResponse* page) {
        v1::GetJobLogsRequest req;
        req.set_job_id(job_id);
        req.set_offset(offset);
        auto ctx = Context(g.timeout_s);
        return stub.GetJobLogs(ctx.get(), req, page);
      },
      [](const v1::GetJobLogsResponse& page) { return page.lines_size(); },
      [](const v1::GetJobLogsResponse& page) {
        for (const auto& line : page.lines()) std::cout << line << "\n";
      },
      follow, g);
}

// Prints a job's training series, a line a point; with `follow`, keeps
// printing new points until the job ends.
int Metrics(v1::JobService::Stub& stub, const std::string& job_id, bool follow, const Globals& g) {
  return ReadFromStart<v1::GetJobMetricsResponse>(
      [&](int64_t offset, v1::GetJobMetricsResponse* page) {
        v1::GetJobMetricsRequest req;
        req.set_job_id(job_id);
        req.set_offset(offset);
        auto ctx = Context(g.timeout_s);
        return stub.GetJobMetrics(ctx.get(), req, page);
      },
      [](const v1::GetJobMetricsResponse& page) { return page.points_size(); },
      [](const v1::GetJobMetricsResponse& page) {
        for (const auto& point : page.points()) {
          std::cout << retrain::client::PointRow(point) << "\n";
        }
      },
      follow, g);
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  if (const char* env = std::getenv("RETRAIN_SERVER")) g.server = env;
  CLI::App app{
      "retrain: build TFRecord datasets from folders of labelled images, train and "
      "evaluate classifiers on them, on a retrain coordinator and its workers; follow "
      "the jobs.\n"
      "Example: retrain build-dataset --train_directory train --validation_directory "
      "validation --output_directory out --labels_file labels.txt --wait"};
  app.require_subcommand(1);
  // --server, --output and --timeout_s work before or after the command.
  app.fallthrough();
  app.add_option("--server", g.server,
                 "Coordinator HOST:PORT, or several, comma-separated, that share a PostgreSQL "
                 "state database: calls go to the one that leads (or RETRAIN_SERVER)")
      ->capture_default_str();
  app.add_option("--output", g.output, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--timeout_s", g.timeout_s, "Deadline of each call")->capture_default_str();
  std::string token_file;
  app.add_option("--token_file", token_file,
                 "File holding the server's client token (or RETRAIN_TOKEN)");
  retrain::TlsFiles tls;
  if (const char* env = std::getenv("RETRAIN_TLS_CA_FILE")) tls.ca_file = env;
  app.add_option("--tls_ca_file", tls.ca_file,
                 "PEM CA of the server's certificate: connect over TLS (or RETRAIN_TLS_CA_FILE)");

  // build-dataset
  v1::DatasetBuildSpec spec;
  std::string train_dir, validation_dir, output_dir, labels_file, shard_format, verify_mode,
      request_id;
  int train_shards = 0, validation_shards = 0, num_threads = 0, jpeg_quality = 0;
  int64_t max_pixels = 0;
  uint64_t seed = 0;
  bool no_background = false, wait = false, validate_only = false;
  auto* build = app.add_subcommand(
      "build-dataset",
      "Convert TRAIN_DIR/<label>/* and VALIDATION_DIR/<label>/* into sharded TFRecord (or "
      "WebDataset) files.\n"
      "Example: retrain build-dataset --train_directory data/train --validation_directory "
      "data/validation --output_directory data/out --labels_file data/labels.txt "
      "--train_shards 128 --validation_shards 24 --wait");
  build->add_option("--train_directory", train_dir, "Training images: <dir>/<label>/<file>");
  build->add_option("--validation_directory", validation_dir,
                    "Validation images: <dir>/<label>/<file>");
  build->add_option("--output_directory", output_dir, "Where the shards go")->required();
  build->add_option("--labels_file", labels_file,
                    "One label per line; line N is label N (default: sorted directory names)");
  auto* ts = build->add_option("--train_shards", train_shards, "Training shards (default 2)");
  auto* vs =
      build->add_option("--validation_shards", validation_shards, "Validation shards (default 2)");
  auto* nt = build->add_option("--num_threads", num_threads,
                               "Conversion threads per worker task (default: the worker's)");
  build->add_flag("--no_background_class", no_background,
                  "Number labels from 0 instead of reserving 0 for the background class");
  auto* jq = build->add_option("--jpeg_quality", jpeg_quality,
                               "Quality for images re-encoded as JPEG (default 95)");
  auto* mp = build->add_option("--max_pixels", max_pixels,
                               "Refuse images with more pixels (default 100000000)");
  auto* sd = build->add_option("--seed", seed, "Shuffle seed (default 12345)");
  build->add_option(
      "--format", shard_format,
      absl::StrCat("Shard format, one of ", retrain::dataset::ShardFormatNames(), " (default ",
                   retrain::dataset::ShardFormatName(retrain::dataset::ShardFormat::kTfRecord),
                   ")"));
  build->add_option(
      "--verify", verify_mode,
      absl::StrCat("How much of each JPEG validation reads: ",
                   retrain::dataset::VerifyModeName(retrain::dataset::VerifyMode::kFull),
                   " (the default: every scan decoded) or ",
                   retrain::dataset::VerifyModeName(retrain::dataset::VerifyMode::kStructure),
                   " (input you trust: markers and EOI only, no decoding)"));
  build->add_option("--request_id", request_id,
                    "Idempotency key: resubmitting with it returns the same job");
  build->add_flag("--validate_only", validate_only, "Check the request; create no job");
  build->add_flag("--wait", wait, "Follow the job; exit 0 only if it succeeds");

  // train
  int priority = 0;
  auto* train = app.add_subcommand(
      "train",
      "Train (or fine-tune) a classifier on a built dataset, on the workers; the job ends with an "
      "evaluation of the final checkpoint.\n"
      "Example: retrain train --data_dir data/out --train_dir runs/1 --model small "
      "--batch_size 64 --num_epochs 8 --wait");
  // One flag per TrainingSpec field (client/training_flags.h).
  const TrainingFlags training_flags(train);
  train->add_option("--priority", priority, "Higher runs first (default 0)");
  train->add_option("--request_id", request_id, "Idempotency key");
  train->add_flag("--validate_only", validate_only, "Check the request; create no job");
  train->add_flag("--wait", wait, "Follow the job; exit 0 only if it succeeds");

  // eval
  std::string e_data, e_checkpoints, e_subset;
  auto* eval = app.add_subcommand(
      "eval",
      "Evaluate the newest checkpoint of a training run on the workers.\n"
      "Example: retrain eval --data_dir data/out --checkpoint_dir runs/1 --wait");
  eval->add_option("--data_dir", e_data, "Dataset directory")->required();
  eval->add_option("--checkpoint_dir", e_checkpoints, "A training run's --train_dir")->required();
  eval->add_option("--subset", e_subset, "validation (default) or train");
  eval->add_option("--priority", priority, "Higher runs first (default 0)");
  eval->add_flag("--wait", wait, "Follow the job; exit 0 only if it succeeds");

  // verify-dataset
  std::string v_data;
  auto* verify = app.add_subcommand(
      "verify-dataset",
      "Re-read every shard of a built dataset on the workers: framing, checksums, index, each "
      "JPEG, the manifest's sizes and SHA-256.\n"
      "Example: retrain verify-dataset --data_dir data/out --wait");
  verify->add_option("--data_dir", v_data, "Dataset directory (a build's --output_directory)")
      ->required();
  verify->add_option("--priority", priority, "Higher runs first (default 0)");
  verify->add_option("--request_id", request_id, "Idempotency key");
  verify->add_flag("--validate_only", validate_only, "Check the request; create no job");
  verify->add_flag("--wait", wait,
                   "Follow the job; exit 0 only if the dataset is intact (4: damage found)");

  std::string job_id;
  bool follow = false;
  auto* logs =
      app.add_subcommand("logs",
                         "Show a training or evaluation job's trainer log (also after it ended).\n"
                         "Example: retrain logs j-000002 --follow");
  logs->add_option("job_id", job_id, "Job id")->required();
  logs->add_flag("-f,--follow", follow, "Keep printing new lines until the job ends");
  auto* metrics = app.add_subcommand(
      "metrics",
      "Show a training or evaluation job's series: every step (loss, learning rate, examples/s), "
      "evaluation and checkpoint its trainer logged.\n"
      "Example: retrain metrics j-000002 --follow");
  metrics->add_option("job_id", job_id, "Job id")->required();
  metrics->add_flag("-f,--follow", follow, "Keep printing new points until the job ends");
  auto* status = app.add_subcommand("status",
                                    "Show a job: state, history, result.\n"
                                    "Example: retrain status j-000001");
  status->add_option("job_id", job_id, "Job id")->required();
  auto* watch = app.add_subcommand(
      "watch",
      "Follow a job until it ends; exit with its outcome.\nExample: retrain watch j-000001");
  watch->add_option("job_id", job_id, "Job id")->required();
  std::string cancel_reason;
  auto* cancel = app.add_subcommand("cancel", "Cancel a job.\nExample: retrain cancel j-000001");
  cancel->add_option("job_id", job_id, "Job id")->required();
  cancel->add_option("--reason", cancel_reason, "Recorded in the job's history");
  int limit = 50;
  auto* list = app.add_subcommand("list", "List jobs, newest first.\nExample: retrain list");
  list->add_option("--limit", limit, "How many")->capture_default_str();
  auto* workers = app.add_subcommand(
      "workers", "List registered workers and their resources.\nExample: retrain workers");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "retrain: " << e.what() << " (see retrain --help)\n";
    return kUsage;
  }

  auto token = retrain::LoadToken("--token_file", token_file, "RETRAIN_TOKEN");
  if (!token.ok()) {
    std::cerr << "retrain: " << token.status().message() << "\n";
    return kUsage;
  }
  Token() = *token;
  auto credentials = retrain::ChannelCredentialsFrom(tls);
  if (!credentials.ok()) {
    std::cerr << "retrain: " << credentials.status().message() << "\n";
    return kUsage;
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = retrain::CoordinatorChannel("--server", g.server, *credentials, args);
  if (!channel.ok()) {
    std::cerr << "retrain: " << channel.status().message() << "\n";
    return kUsage;
  }
  SeveralCoordinators() = g.server.find(',') != std::string::npos;
  auto stub = v1::JobService::NewStub(*channel);

  if (*build) {
    v1::SubmitDatasetBuildRequest req;
    auto* s = req.mutable_spec();
    s->set_train_directory(Absolute(train_dir));
    s->set_validation_directory(Absolute(validation_dir));
    s->set_output_directory(Absolute(output_dir));
    s->set_labels_file(Absolute(labels_file));
    if (ts->count()) s->set_train_shards(train_shards);
    if (vs->count()) s->set_validation_shards(validation_shards);
    if (nt->count()) s->set_num_threads(num_threads);
    if (no_background) s->set_background_class(false);
    if (jq->count()) s->set_jpeg_quality(jpeg_quality);
    if (mp->count()) s->set_max_pixels(max_pixels);
    if (sd->count()) s->set_seed(seed);
    s->set_format(shard_format);
    s->set_verify(verify_mode);
    req.set_validate_only(validate_only);
    // A retried submit (the server restarting) must not create a second job.
    req.set_request_id(request_id.empty() ? RandomRequestId() : request_id);
    return SubmitAndFollow(
        *stub, g, validate_only, wait,
        [&](grpc::ClientContext* ctx, v1::Job* job) {
          return stub->SubmitDatasetBuild(ctx, req, job);
        },
        [](const v1::Job& job) {
          return job.dataset_build().train_directory() + " + " +
                 job.dataset_build().validation_directory() + " -> " +
                 job.dataset_build().output_directory() +
                 " (a worker checks the paths and reads the labels when it runs)";
        });
  }
  if (*train) {
    v1::SubmitTrainingRequest req;
    *req.mutable_spec() = training_flags.Spec(Absolute);
    req.set_priority(priority);
    req.set_validate_only(validate_only);
    req.set_request_id(request_id.empty() ? RandomRequestId() : request_id);
    return SubmitAndFollow(*stub, g, validate_only, wait,
                           [&](grpc::ClientContext* ctx, v1::Job* job) {
                             return stub->SubmitTraining(ctx, req, job);
                           });
  }
  if (*eval) {
    v1::SubmitEvaluationRequest req;
    req.mutable_spec()->set_data_dir(Absolute(e_data));
    req.mutable_spec()->set_checkpoint_dir(Absolute(e_checkpoints));
    req.mutable_spec()->set_subset(e_subset);
    req.set_priority(priority);
    req.set_request_id(RandomRequestId());
    return SubmitAndFollow(*stub, g, false, wait, [&](grpc::ClientContext* ctx, v1::Job* job) {
      return stub->SubmitEvaluation(ctx, req, job);
    });
  }
  if (*verify) {
    v1::SubmitDatasetVerifyRequest req;
    req.mutable_spec()->set_data_dir(Absolute(v_data));
    req.set_priority(priority);
    req.set_validate_only(validate_only);
    req.set_request_id(request_id.empty() ? RandomRequestId() : request_id);
    return SubmitAndFollow(*stub, g, validate_only, wait,
                           [&](grpc::ClientContext* ctx, v1::Job* job) {
                             return stub->SubmitDatasetVerify(ctx, req, job);
                           });
  }
  if (*logs) return Logs(*stub, job_id, follow, g);
  if (*metrics) return Metrics(*stub, job_id, follow, g);
  if (*watch) return Watch(*stub, job_id, g);
  if (*status) {
    v1::GetJobRequest req;
    req.set_job_id(job_id);
    v1::Job job;
    auto ctx = Context(g.timeout_s);
    if (auto st = stub->GetJob(ctx.get(), req, &job); !st.ok()) return ReportError(st, g);
    if (g.output == "json") {
      std::cout << retrain::client::ToJson(job) << "\n";
    } else {
      std::cout << retrain::client::JobSummary(job) << "history:\n";
      for (const auto& e : job.history()) {
        std::cout << "  " << google::protobuf::util::TimeUtil::ToString(e.time()) << "  "
                  << e.reason() << "\n";
      }
    }
    return kOk;
  }
  if (*cancel) {
    v1::CancelJobRequest req;
    req.set_job_id(job_id);
    req.set_reason(cancel_reason);
    v1::Job job;
    auto ctx = Context(g.timeout_s);
    if (auto st = stub->CancelJob(ctx.get(), req, &job); !st.ok()) return ReportError(st, g);
    if (g.output == "json") {
      std::cout << retrain::client::ToJson(job) << "\n";
    } else {
      std::cout << job.id() << " " << retrain::StateName(job.state()) << "\n";
    }
    return kOk;
  }
  if (*list) {
    v1::ListJobsRequest req;
    req.set_page_size(limit);
    req.set_summary_only(true);
    v1::ListJobsResponse resp;
    auto ctx = Context(g.timeout_s);
    if (auto st = stub->ListJobs(ctx.get(), req, &resp); !st.ok()) return ReportError(st, g);
    if (g.output == "json") {
      std::cout << retrain::client::ToJson(resp) << "\n";
    } else {
      for (const auto& job : resp.jobs()) std::cout << retrain::client::JobRow(job) << "\n";
    }
    return kOk;
  }
  if (*workers) {
    v1::ListWorkersResponse resp;
    auto ctx = Context(g.timeout_s);
    if (auto st = stub->ListWorkers(ctx.get(), v1::ListWorkersRequest(), &resp); !st.ok()) {
      return ReportError(st, g);
    }
    if (g.output == "json") {
      std::cout << retrain::client::ToJson(resp) << "\n";
    } else {
      for (const auto& w : resp.workers()) std::cout << retrain::client::WorkerRow(w) << "\n";
    }
    return kOk;
  }
  return kUsage;
}
