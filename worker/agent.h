// The worker process's loop: register with the coordinator, lease tasks,
// run them, report results, and keep leases alive with heartbeats.
#pragma once

#include <grpcpp/security/credentials.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "retrain/v1/worker_service.grpc.pb.h"
#include "worker/task_runners.h"

namespace retrain::worker {

struct AgentOptions {
  std::string server;  // HOST:PORT
  int threads = 1;     // conversion threads per task
  // Give up when the coordinator cannot be reached for this long.
  int unreachable_timeout_s = 300;
  // The retrain-trainer binary train and eval tasks run (default: beside
  // this program).
  std::string trainer_path;
  // The coordinator's worker token ("" for a server without tokens).
  std::string token;
  // The address other workers reach this one at, registered as its
  // hostname: rank 0 of a training job over several workers serves its
  // rendezvous there. Default: this machine's hostname (in a container, pass
  // the pod's IP).
  std::string advertise_host;
  // How to reach the coordinator (TLS, a client certificate); null:
  // plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Touched (created if missing) at every heartbeat the coordinator
  // acknowledges, so that its age says how long ago this worker was last in
  // touch: the health signal of a container or an exec probe. "": none.
  std::string health_file;
};

// Thread-safe: Stop() may be called from any thread while Run() runs.
class Agent {
 public:
  // Reaches the coordinator through a channel to options.server, one
  // HOST:PORT or several (common/coordinator_channel.h); INVALID_ARGUMENT
  // naming --server when it is not that.
  static absl::StatusOr<std::unique_ptr<Agent>> Connect(AgentOptions options);
  // Makes a fresh stub over a new channel; null when it cannot.
  using StubFactory = std::function<std::unique_ptr<retrain::v1::WorkerService::StubInterface>()>;
  // Reaches the coordinator through `stub` (any implementation of the
  // generated interface: tests pass one over an in-process channel or a
  // fake), and through one from `reconnect`, when given, once the
  // coordinator has been unreachable for a while.
  Agent(AgentOptions options, std::unique_ptr<retrain::v1::WorkerService::StubInterface> stub,
        StubFactory reconnect = nullptr);
  ~Agent();

  // Runs until Stop() or until the coordinator is unreachable for too long.
  absl::Status Run();
  // Stops after the current task's in-flight work is abandoned; its lease
  // expires on the coordinator and the task goes to another worker.
  void Stop();

 private:
  absl::Status Register();
  void HeartbeatLoop();
  // Sets the health file's modification time to now; says once if it cannot.
  void TouchHealthFile();
  // Runs a task leased by the task loop: the worker's one task at a time,
  // with its lease fenced and its progress reported.
  void RunTask(const retrain::v1::Task& task);
  // The check loop: leases requests' checks alone (LeaseTaskRequest.
  // checks_only) and runs them beside the task loop's task.
  void CheckLoop();
  // One LeaseTask call for this worker, waiting up to 2 s on the
  // coordinator for a task (for a check alone with `checks_only`);
  // `leased_as` (may be null): the worker id the call was made with, which
  // the task's reports must carry.
  grpc::Status Lease(bool checks_only, retrain::v1::LeaseTaskResponse* resp,
                     std::string* leased_as);
  // Runs `task` with `env` and reports its result (or its failure) for
  // `worker_id`.
  void RunAndReport(const retrain::v1::Task& task, const std::string& worker_id,
                    const TaskEnvironment& env);
  // How long WithRetry() goes on and how it backs off.
  struct RetryLimits {
    std::chrono::steady_clock::time_point give_up;
    int first_backoff_ms = 100;
    int max_backoff_ms = 2000;
    bool warn = true;  // log once that the coordinator is unreachable
  };
  // Retries `call` while the coordinator is unreachable, until `limits`
  // (default: --unreachable_timeout_s from now) or the agent stops.
  // Returns its last status.
  template <typename Call>
  grpc::Status WithRetry(const char* what, const RetryLimits& limits, Call call);
  template <typename Call>
  grpc::Status WithRetry(const char* what, Call call);
  // A progress report the coordinator must acknowledge: true when it did
  // and the task should go on, retrying while it is unreachable until the
  // lease would have run out.
  bool ConfirmLease(const retrain::v1::Task& task, int64_t done, int64_t bytes);
  // How long after the last acknowledged heartbeat this worker treats its
  // lease as lost: three quarters of the coordinator's lease timeout, so a
  // cut-off worker stops writing before the coordinator re-assigns its task.
  std::chrono::milliseconds FenceAfter();

  // The stub calls go through (a copy: it may be replaced meanwhile).
  std::shared_ptr<retrain::v1::WorkerService::StubInterface> Stub();
  // After a call found the coordinator unreachable: replaces the stub by a
  // fresh one once it has been unreachable for kFreshChannelAfter (and not
  // more often). A channel's health checks back off to tens of seconds
  // while a leader is lost; a new channel finds its successor at once.
  void FreshChannelIfUnreachable(std::chrono::steady_clock::time_point unreachable_since);

  const AgentOptions options_;
  const StubFactory reconnect_;  // null: the stub is kept
  std::mutex stub_mu_;
  std::shared_ptr<retrain::v1::WorkerService::StubInterface> stub_;  // guarded by stub_mu_
  std::chrono::steady_clock::time_point stub_made_;                  // guarded by stub_mu_
  std::atomic<bool> stopping_{false};
  bool health_file_failed_ = false;  // heartbeat thread only

  std::mutex mu_;
  std::string worker_id_;          // guarded by mu_
  int heartbeat_interval_ms_ = 2000;  // guarded by mu_
  int64_t current_lease_ = 0;      // guarded by mu_; 0 when idle
  int64_t check_lease_ = 0;        // guarded by mu_; the check loop's, 0 when none
  // Set by Register(): the coordinator leases checks apart.
  std::atomic<bool> leases_checks_only_{false};
  int lease_timeout_ms_ = 15000;   // guarded by mu_
  // When the coordinator last acknowledged this worker's lease (a heartbeat,
  // a progress report or the lease itself); guarded by mu_.
  std::chrono::steady_clock::time_point last_ack_;
  std::atomic<bool> task_cancelled_{false};
  // The current task's lease is lost: stop at once, keep no output.
  std::atomic<bool> lease_lost_{false};
};

}  // namespace retrain::worker
