// Test support that runs the real binaries: a coordinator on a free
// loopback port with its state in a temporary directory, worker processes,
// and CLI invocations. Processes are killed when their owners go away.
// Not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "retrain/v1/job_service.grpc.pb.h"
#include "tests/support/postgres_server.h"
#include "tests/support/process.h"

namespace retrain::testing {

struct ClusterOptions {
  // Multiplied by RETRAIN_TEST_TIME_SCALE when that is set (sanitizer runs).
  int lease_timeout_ms = 3000;
  int heartbeat_interval_ms = 300;
  // Serve HTTP too (--http_listen on a free loopback port).
  bool http = false;
  // Tokens the server requires (both or neither); workers, the CLI and the
  // cluster's own calls use them.
  std::string client_token;
  std::string worker_token;
  // More flags for retrain-server.
  std::vector<std::string> server_args;
  // Keep the state in PostgreSQL (tests/support/postgres_server.h) at this
  // URI, with the password in this file, instead of in `root`/state. When
  // empty and RETRAIN_TEST_STORE=postgres, the cluster starts a PostgreSQL
  // server of its own and keeps the state there.
  std::string state_db;
  std::string state_db_password_file;
  // Coordinator i's URI when given (e.g. through a TcpProxy), else state_db.
  std::vector<std::string> state_db_of;
  // Coordinators sharing state_db: one leads, the others stand by; workers,
  // the CLI and the cluster's own calls are given all of them.
  int coordinators = 1;
  // --leader_lease_ms (scaled as the lease timeout).
  int leader_lease_ms = 3000;
};

// `token` in `dir`/`name`.token, readable by its owner only; returns its path.
std::string TokenFile(const std::string& dir, const std::string& name, const std::string& token);

// A coordinator and workers for one test. The coordinator's data root is
// `root`; its state lives in `root`/state.
class Cluster {
 public:
  Cluster(std::string root, ClusterOptions options = {});
  ~Cluster();

  // Starts the coordinator on `port` (0: any free port) and waits until it
  // answers. With several coordinators, starts each on a port of its own
  // and waits until one leads.
  void StartServer(int port = 0);
  void KillServer(int sig = 9);

  // With several coordinators: the index of the one that leads, waiting up
  // to `timeout` for one (-1: none did; 0 s: looks once).
  int WaitForLeader(std::chrono::seconds timeout = std::chrono::seconds(60));
  void KillCoordinator(int i, int sig = 9);
  // Starts coordinator `i` again on its port.
  void StartCoordinator(int i);
  Process& coordinator(int i) { return *servers_[i]; }
  int coordinators() const { return static_cast<int>(servers_.size()); }
  int coordinator_port(int i) const { return ports_[i]; }
  // `uid` >= 0 runs the worker as that user (the test must run as root),
  // from a copy of the binary under `root`, which that user must be able to enter.
  // `server` ("": the coordinator's address) is where the worker connects,
  // e.g. a TcpProxy in front of the coordinator.
  Process& StartWorker(int threads, int uid = -1, const std::string& server = "");
  std::vector<std::unique_ptr<Process>>& workers() { return workers_; }

  // "127.0.0.1:PORT", or several, comma-separated.
  const std::string& address() const { return address_; }
  int port() const { return ports_.empty() ? 0 : ports_[0]; }
  // The HTTP port (options.http), and "http://127.0.0.1:PORT".
  int http_port() const { return http_port_; }
  std::string http_url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }
  // Adds the client token, if any, to a call's metadata.
  void Authorize(grpc::ClientContext& ctx) const;
  retrain::v1::JobService::Stub& jobs() { return *stub_; }

  // Polls the job every `poll` until `done` holds for it or `timeout`
  // passes; returns the last snapshot (fails the test on timeout).
  retrain::v1::Job WaitForJob(const std::string& job_id,
                              const std::function<bool(const retrain::v1::Job&)>& done,
                              std::chrono::seconds timeout = std::chrono::seconds(120),
                              std::chrono::milliseconds poll = std::chrono::milliseconds(50));
  retrain::v1::Job WaitForEnd(const std::string& job_id,
                              std::chrono::seconds timeout = std::chrono::seconds(120));
  // Whether the job has reached a final state (false when the coordinator
  // does not answer).
  bool JobEnded(const std::string& job_id);

  // The CLI against this cluster.
  CommandResult Cli(std::vector<std::string> args);

  std::string ServerLog() const;
  // The end of each worker's log, for a failure's message.
  std::string WorkerLogTails() const;

 private:
  std::string root_;
  ClusterOptions options_;
  // Starts coordinator `i` on `port` and waits for its port file.
  void StartOne(int i, int port);
  std::string ServerFile(int i, const std::string& suffix) const;
  std::string WorkerLogPath(int n) const;
  // Whether coordinator `i` answers as the leader.
  bool Leads(int i);

  std::unique_ptr<PostgresServer> own_database_;
  std::vector<std::unique_ptr<Process>> servers_;
  std::vector<std::unique_ptr<Process>> workers_;
  std::string address_;
  std::vector<int> ports_;
  int http_port_ = 0;
  std::unique_ptr<retrain::v1::JobService::Stub> stub_;
};

}  // namespace retrain::testing
