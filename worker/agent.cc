#include "worker/agent.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/bearer_token.h"
#include "common/coordinator_channel.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/system_memory.h"
#include "worker/gpu_inventory.h"
#include "worker/task_runners.h"

namespace retrain::worker {

namespace v1 = retrain::v1;
using std::chrono::milliseconds;

namespace {

constexpr const char* kVersion = "0.1.0";
// How long the coordinator stays unreachable before calls go through a new
// channel (Agent::FreshChannelIfUnreachable).
constexpr auto kFreshChannelAfter = std::chrono::seconds(2);

std::unique_ptr<grpc::ClientContext> Context(int timeout_ms, const std::string& token) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + milliseconds(timeout_ms));
  if (!token.empty()) ctx->AddMetadata("authorization", BearerValue(token));
  return ctx;
}

// This machine's resources; GPUs (nvidia-smi) are looked up again every 10 s.
v1::WorkerResources Resources(int threads) {
  static std::mutex mu;
  static std::vector<v1::GpuInfo> gpus;
  static std::chrono::steady_clock::time_point gpus_at;
  v1::WorkerResources r;
  // A container's limits count, not only the machine's.
  const CgroupLimits limits = ReadCgroupLimits();
  int32_t cores = static_cast<int32_t>(std::thread::hardware_concurrency());
  if (limits.cpus > 0) cores = std::min(cores, static_cast<int32_t>(std::ceil(limits.cpus)));
  r.set_cpu_cores(cores);
  struct sysinfo info;
  if (sysinfo(&info) == 0) {
    int64_t total = static_cast<int64_t>(info.totalram) * info.mem_unit;
    if (limits.memory_limit_bytes > 0) total = std::min(total, limits.memory_limit_bytes);
    r.set_memory_bytes(total);
    const int64_t available = AvailableMemoryBytes();
    r.set_free_memory_bytes(available >= 0 ? available
                                           : static_cast<int64_t>(info.freeram) * info.mem_unit);
  }
  r.set_threads(threads);
  std::lock_guard<std::mutex> lock(mu);
  const auto now = std::chrono::steady_clock::now();
  if (gpus_at == std::chrono::steady_clock::time_point() ||
      now - gpus_at > std::chrono::seconds(10)) {
    gpus = DetectGpus();
    gpus_at = now;
  }
  for (const auto& g : gpus) *r.add_gpus() = g;
  return r;
}

// Whether a call failed for want of a coordinator to answer it in time, and
// is worth retrying (the worker never cancels its own calls).
bool Unreachable(const grpc::Status& s) {
  return CoordinatorWentAway(s) || s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// The options, with retrain-trainer beside this program unless named.
AgentOptions WithDefaults(AgentOptions options) {
  if (options.trainer_path.empty()) {
    char self[4096] = {};
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    std::string dir = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string();
    options.trainer_path = dir.substr(0, dir.rfind('/') + 1) + "retrain-trainer";
  }
  return options;
}

}  // namespace

Agent::Agent(AgentOptions options, std::unique_ptr<v1::WorkerService::StubInterface> stub,
             StubFactory reconnect)
    : options_(WithDefaults(std::move(options))),
      reconnect_(std::move(reconnect)),
      stub_(std::move(stub)),
      stub_made_(std::chrono::steady_clock::now()) {}

std::shared_ptr<v1::WorkerService::StubInterface> Agent::Stub() {
  std::lock_guard<std::mutex> lock(stub_mu_);
  return stub_;
}

void Agent::FreshChannelIfUnreachable(std::chrono::steady_clock::time_point unreachable_since) {
  if (!reconnect_) return;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(stub_mu_);
  if (now - unreachable_since < kFreshChannelAfter || now - stub_made_ < kFreshChannelAfter) {
    return;
  }
  auto fresh = reconnect_();
  if (fresh == nullptr) return;  // the names no longer resolve: keep trying the old channel
  Logger("worker")->info("coordinator {} unreachable for {} ms: trying a new channel",
                         options_.server,
                         std::chrono::duration_cast<milliseconds>(now - unreachable_since).count());
  stub_ = std::move(fresh);
  stub_made_ = now;
}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Connect(AgentOptions options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  // Reconnect quickly after a coordinator restart.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  const auto credentials =
      options.credentials ? options.credentials : grpc::InsecureChannelCredentials();
  ASSIGN_OR_RETURN(auto channel, CoordinatorChannel("--server", options.server, credentials, args));
  // Made again the same way on reconnection (null when the names no longer
  // resolve).
  const std::string server = options.server;
  StubFactory reconnect = [server, credentials,
                           args]() -> std::unique_ptr<v1::WorkerService::StubInterface> {
    auto channel = CoordinatorChannel("--server", server, credentials, args);
    if (!channel.ok()) return nullptr;
    return v1::WorkerService::NewStub(*channel);
  };
  return std::make_unique<Agent>(std::move(options), v1::WorkerService::NewStub(channel),
                                 std::move(reconnect));
}

Agent::~Agent() = default;

void Agent::Stop() {
  stopping_ = true;
  task_cancelled_ = true;
}

template <typename Call>
grpc::Status Agent::WithRetry(const char* what, const RetryLimits& limits, Call call) {
  int backoff_ms = limits.first_backoff_ms;
  bool warned = !limits.warn;
  const auto since = std::chrono::steady_clock::now();
  while (true) {
    grpc::Status s = call();
    if (!Unreachable(s) || stopping_ || std::chrono::steady_clock::now() > limits.give_up) {
      return s;
    }
    FreshChannelIfUnreachable(since);
    if (!warned) {
      Logger("worker")->warn("{}: coordinator {} unreachable ({}); retrying", what,
                             options_.server, s.error_message());
      warned = true;
    }
    std::this_thread::sleep_for(milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, limits.max_backoff_ms);
  }
}

template <typename Call>
grpc::Status Agent::WithRetry(const char* what, Call call) {
  RetryLimits limits;
  limits.give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(options_.unreachable_timeout_s);
  return WithRetry(what, limits, call);
}

absl::Status Agent::Register() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  v1::RegisterWorkerRequest req;
  req.set_hostname(options_.advertise_host.empty() ? host : options_.advertise_host);
  req.set_pid(getpid());
  req.set_version(kVersion);
  *req.mutable_resources() = Resources(options_.threads);
  v1::RegisterWorkerResponse resp;
  grpc::Status s = WithRetry("register", [&] {
    auto ctx = Context(5000, options_.token);
    ctx->set_wait_for_ready(true);
    return Stub()->RegisterWorker(ctx.get(), req, &resp);
  });
  if (!s.ok()) return FromGrpcStatus(s);
  std::lock_guard<std::mutex> lock(mu_);
  worker_id_ = resp.worker_id();
  heartbeat_interval_ms_ = resp.heartbeat_interval_ms();
  if (resp.lease_timeout_ms() > 0) lease_timeout_ms_ = resp.lease_timeout_ms();
  leases_checks_only_ = resp.leases_checks_only();
  Logger("worker")->info("registered with {} as {} ({} threads)", options_.server, worker_id_,
                         options_.threads);
  return absl::OkStatus();
}

absl::Status Agent::Run() {
  if (absl::Status s = Register(); !s.ok()) return s;
  std::thread heartbeat([this] { HeartbeatLoop(); });
  // A coordinator that leases request checks apart has them run here beside
  // the task (an older one would lease any task to the second lane).
  std::thread checks;
  if (leases_checks_only_) checks = std::thread([this] { CheckLoop(); });
  absl::Status result;
  while (!stopping_) {
    v1::LeaseTaskResponse resp;
    grpc::Status s = WithRetry("lease", [&] { return Lease(false, &resp, nullptr); });
    if (stopping_) break;
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
      if (absl::Status r = Register(); !r.ok()) {
        result = r;
        break;
      }
      continue;
    }
    if (!s.ok()) {
      result = absl::UnavailableError(absl::StrCat("coordinator ", options_.server,
                                                   " unreachable: ", s.error_message()));
      break;
    }
    if (resp.has_task()) RunTask(resp.task());
  }
  stopping_ = true;
  heartbeat.join();
  if (checks.joinable()) checks.join();
  return result;
}

std::chrono::milliseconds Agent::FenceAfter() {
  std::lock_guard<std::mutex> lock(mu_);
  return milliseconds(lease_timeout_ms_ * 3 / 4);
}

bool Agent::ConfirmLease(const v1::Task& task, int64_t done, int64_t bytes) {
  const auto fence_after = FenceAfter();
  v1::ReportProgressRequest req;
  std::chrono::steady_clock::time_point give_up;
  {
    std::lock_guard<std::mutex> lock(mu_);
    req.set_worker_id(worker_id_);
    give_up = last_ack_ + fence_after;
  }
  req.set_task_id(task.id());
  req.set_lease_id(task.lease_id());
  req.set_done(done);
  req.set_bytes_done(bytes);
  // Short back-off and no warning: the lease runs out within seconds, and
  // a fence follows if it does.
  RetryLimits limits;
  limits.give_up = give_up;
  limits.first_backoff_ms = 50;
  limits.max_backoff_ms = 500;
  limits.warn = false;
  v1::ReportProgressResponse resp;
  const grpc::Status s = WithRetry("confirm lease", limits, [&] {
    if (lease_lost_) return grpc::Status(grpc::StatusCode::ABORTED, "the lease was lost");
    auto ctx = Context(1000, options_.token);
    return Stub()->ReportProgress(ctx.get(), req, &resp);
  });
  if (s.ok() && resp.keep_going()) {
    std::lock_guard<std::mutex> lock(mu_);
    last_ack_ = std::chrono::steady_clock::now();
    return true;
  }
  if (stopping_) return false;
  Logger("worker")->warn("job {} task {}: lease {} not confirmed before writing its output ({})",
                         task.job_id(), task.id(), task.lease_id(),
                         s.ok() ? "the coordinator gave the task up" : s.error_message());
  return false;
}

void Agent::TouchHealthFile() {
  if (options_.health_file.empty()) return;
  const int fd = ::open(options_.health_file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0 && ::futimens(fd, nullptr) == 0) {
    ::close(fd);
    return;
  }
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (!health_file_failed_) {
    health_file_failed_ = true;
    Logger("worker")->warn("--health_file {}: cannot touch it: {}", options_.health_file,
                           std::strerror(err));
  }
}

void Agent::HeartbeatLoop() {
  std::optional<std::chrono::steady_clock::time_point> unreachable_since;
  while (!stopping_) {
    v1::HeartbeatRequest req;
    int interval;
    {
      std::lock_guard<std::mutex> lock(mu_);
      req.set_worker_id(worker_id_);
      if (current_lease_ != 0) req.add_lease_ids(current_lease_);
      if (check_lease_ != 0) req.add_lease_ids(check_lease_);
      interval = heartbeat_interval_ms_;
    }
    *req.mutable_resources() = Resources(options_.threads);
    v1::HeartbeatResponse resp;
    auto ctx = Context(std::max(interval, 1000), options_.token);
    grpc::Status s = Stub()->Heartbeat(ctx.get(), req, &resp);
    if (Unreachable(s)) {
      if (!unreachable_since) unreachable_since = std::chrono::steady_clock::now();
      FreshChannelIfUnreachable(*unreachable_since);
    } else {
      unreachable_since.reset();
    }
    const auto fence_after = FenceAfter();
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto now = std::chrono::steady_clock::now();
      if (s.ok()) {
        last_ack_ = now;
        for (int64_t lease : resp.revoked_lease_ids()) {
          // Said once: a trainer may take a while to write its checkpoint.
          if (lease == current_lease_ && !task_cancelled_) {
            Logger("worker")->warn("lease {} revoked by the coordinator; stopping its task",
                                   lease);
            task_cancelled_ = true;
          }
        }
      } else if (current_lease_ != 0 && !lease_lost_ && now - last_ack_ > fence_after) {
        Logger("worker")->warn(
            "lease {} not confirmed by the coordinator for {} ms ({}): stopping its task and "
            "keeping none of its output; the coordinator gives it to another worker",
            current_lease_,
            std::chrono::duration_cast<milliseconds>(now - last_ack_).count(), s.error_message());
        lease_lost_ = true;
        task_cancelled_ = true;
      }
    }
    if (s.ok()) TouchHealthFile();
    // Sleep in small steps so Stop() is prompt.
    for (int slept = 0; slept < interval && !stopping_; slept += 50) {
      std::this_thread::sleep_for(milliseconds(50));
    }
  }
}

grpc::Status Agent::Lease(bool checks_only, v1::LeaseTaskResponse* resp, std::string* leased_as) {
  v1::LeaseTaskRequest req;
  {
    std::lock_guard<std::mutex> lock(mu_);
    req.set_worker_id(worker_id_);
  }
  if (leased_as != nullptr) *leased_as = req.worker_id();
  req.set_wait_ms(2000);
  req.set_checks_only(checks_only);
  auto ctx = Context(req.wait_ms() + 5000, options_.token);
  return Stub()->LeaseTask(ctx.get(), req, resp);
}

void Agent::CheckLoop() {
  while (!stopping_) {
    v1::LeaseTaskResponse resp;
    std::string leased_as;
    // The task loop registers again and reconnects when that is needed.
    if (!Lease(true, &resp, &leased_as).ok()) {
      for (int slept = 0; slept < 500 && !stopping_; slept += 50) {
        std::this_thread::sleep_for(milliseconds(50));
      }
      continue;
    }
    if (!resp.has_task()) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      check_lease_ = resp.task().lease_id();
    }
    TaskEnvironment env;
    env.run.cancelled = &stopping_;
    RunAndReport(resp.task(), leased_as, env);
    std::lock_guard<std::mutex> lock(mu_);
    check_lease_ = 0;
  }
}

void Agent::RunTask(const v1::Task& task) {
  std::string worker_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_lease_ = task.lease_id();
    worker_id = worker_id_;
    last_ack_ = std::chrono::steady_clock::now();
    task_cancelled_ = false;
    lease_lost_ = false;
  }
  TaskEnvironment env;
  RunContext& context = env.run;
  context.threads = options_.threads;
  context.cancelled = &task_cancelled_;
  context.confirm_lease = [&](int64_t done, int64_t bytes) {
    return ConfirmLease(task, done, bytes);
  };
  context.progress = [&](int64_t done, int64_t bytes) {
    v1::ReportProgressRequest req;
    req.set_worker_id(worker_id);
    req.set_task_id(task.id());
    req.set_lease_id(task.lease_id());
    req.set_done(done);
    req.set_bytes_done(bytes);
    v1::ReportProgressResponse resp;
    auto ctx = Context(2000, options_.token);
    if (Stub()->ReportProgress(ctx.get(), req, &resp).ok() && !resp.keep_going()) {
      task_cancelled_ = true;
    }
  };
  env.trainer.trainer_path = options_.trainer_path;
  env.trainer.cancelled = &task_cancelled_;
  env.trainer.lease_lost = &lease_lost_;
  // The trainer's lines and points the coordinator has confirmed.
  int64_t lines_reported = 0, points_reported = 0;
  env.trainer.report = [&](const TrainerReport& report) {
    v1::ReportProgressRequest req;
    req.set_worker_id(worker_id);
    req.set_task_id(task.id());
    req.set_lease_id(task.lease_id());
    req.set_done(report.progress.step());
    *req.mutable_training() = report.progress;
    for (const auto& l : report.lines) req.add_log_lines(l);
    for (const auto& p : report.points) *req.add_points() = p;
    req.set_log_lines_before(lines_reported);
    req.set_points_before(points_reported);
    v1::ReportProgressResponse resp;
    auto ctx = Context(5000, options_.token);
    const grpc::Status s = Stub()->ReportProgress(ctx.get(), req, &resp);
    if (s.ok()) {
      lines_reported += req.log_lines_size();
      points_reported += req.points_size();
      if (!resp.keep_going()) task_cancelled_ = true;
    }
    return !Unreachable(s);
  };
  RunAndReport(task, worker_id, env);
  std::lock_guard<std::mutex> lock(mu_);
  current_lease_ = 0;
}

void Agent::RunAndReport(const v1::Task& task, const std::string& worker_id,
                         const TaskEnvironment& env) {
  auto log = Logger("worker");
  const auto start = std::chrono::steady_clock::now();
  v1::TaskResult result;
  absl::Status status;
  std::string what = "task";
  if (const TaskRunner* runner = FindTaskRunner(task.kind_case()); runner == nullptr) {
    status = absl::UnimplementedError("this worker does not know the task's kind; upgrade it");
  } else {
    what = runner->describe(task);
    try {
      auto r = runner->run(task, env);
      if (r.ok()) result = *std::move(r);
      status = r.status();
    } catch (const std::exception& e) {
      // A fault here must not take the worker (and its heartbeats) down.
      status = absl::InternalError(absl::StrCat(what, ": ", e.what()));
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (status.code() == absl::StatusCode::kCancelled) {
    log->info("job {} task {}: {} abandoned (lease revoked or worker stopping)", task.job_id(),
              task.id(), what);
  } else if (status.ok()) {
    v1::CompleteTaskRequest req;
    req.set_worker_id(worker_id);
    req.set_task_id(task.id());
    req.set_lease_id(task.lease_id());
    *req.mutable_result() = std::move(result);
    v1::CompleteTaskResponse resp;
    grpc::Status s = WithRetry("complete", [&] {
      auto ctx = Context(10000, options_.token);
      return Stub()->CompleteTask(ctx.get(), req, &resp);
    });
    if (s.ok()) {
      log->info("job {} task {}: {} done in {:.2f} s", task.job_id(), task.id(), what, secs);
    } else {
      log->warn("job {} task {}: result refused: {}", task.job_id(), task.id(),
                s.error_message());
    }
  } else {
    // Errors writing the output will not go away on another worker, nor
    // will a trainer's configuration error, bad data, diverged loss or
    // out-of-memory at the same batch size.
    const bool retryable = status.code() != absl::StatusCode::kPermissionDenied &&
                           status.code() != absl::StatusCode::kResourceExhausted &&
                           status.code() != absl::StatusCode::kUnimplemented &&
                           status.code() != absl::StatusCode::kFailedPrecondition;
    log->error("job {} task {}: {} failed: {}", task.job_id(), task.id(), what,
               std::string(status.message()));
    v1::FailTaskRequest req;
    req.set_worker_id(worker_id);
    req.set_task_id(task.id());
    req.set_lease_id(task.lease_id());
    req.set_error(std::string(status.message()));
    req.set_retryable(retryable);
    v1::FailTaskResponse resp;
    WithRetry("fail", [&] {
      auto ctx = Context(10000, options_.token);
      return Stub()->FailTask(ctx.get(), req, &resp);
    });
  }
}

}  // namespace retrain::worker
