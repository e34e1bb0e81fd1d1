// retrain-server: the coordinator.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "common/bearer_token.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/stop_signals.h"
#include "common/tls_credentials.h"
#include "server/access_policy.h"
#include "server/coordinator.h"
#include "server/front_ends.h"
#include "server/grpc_services.h"
#include "server/http_gateway.h"
#include "server/leadership.h"
#include "server/metrics.h"
#include "server/restart.h"
#include "server/rpc_metrics_interceptor.h"
#include "server/standby_service.h"
#include "server/state_flags.h"

namespace {

// Whether HOST:PORT names a loopback address (127.0.0.0/8, ::1, localhost).
bool IsLoopback(const std::string& listen) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// Set once, by a signal.
class StopSignal {
 public:
  void Set() {
    std::lock_guard<std::mutex> lock(mu_);
    set_ = true;
    cv_.notify_all();
  }
  bool IsSet() {
    std::lock_guard<std::mutex> lock(mu_);
    return set_;
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

void StopServingHealth(grpc::Server& server) {
  for (const char* service : {"", "retrain.v1.JobService", "retrain.v1.WorkerService"}) {
    server.GetHealthCheckService()->SetServingStatus(service, false);
  }
}

int Fail(const std::string& message) {
  std::cerr << "retrain-server: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  retrain::BlockStopSignals();
  retrain::server::RememberArguments(argv);
  retrain::server::CoordinatorOptions options;
  retrain::server::FrontEndFlags front;
  std::string client_token_file, worker_token_file;
  int max_watch_streams = 256;
  retrain::server::LeadershipOptions leading;
  retrain::TlsFiles tls;
  std::string log_level = "info";
  std::string log_format = "text";
  CLI::App app{"retrain-server: the retrain coordinator. Accepts jobs over gRPC, keeps them in "
               "SQLite under --state_dir (or PostgreSQL, --state_db, where several lead in "
               "turn), and hands their tasks to retrain-worker processes.\n"
               "Example: retrain-server --listen 127.0.0.1:50051 --state_dir /var/lib/retrain "
               "--data_root /data"};
  app.add_option("--listen", front.listen, "HOST:PORT to serve on; port 0 picks a free port")
      ->capture_default_str();
  retrain::server::StateFlags state;
  retrain::server::AddStateFlags(app, state);
  app.add_option("--data_root", options.data_roots,
                 "Directory requests may read and write (repeatable; default: the working "
                 "directory)");
  app.add_option("--port_file", front.port_file, "Write the port actually bound to this file");
  app.add_option("--lease_timeout_ms", options.lease_timeout_ms,
                 "A worker silent this long loses its tasks")
      ->capture_default_str()
      ->check(CLI::Range(500, 3600000));
  app.add_option("--max_task_attempts", options.max_task_attempts,
                 "Leases a task may use up (workers lost, trainers crashed) before its job "
                 "fails")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--heartbeat_interval_ms", options.heartbeat_interval_ms,
                 "How often workers send heartbeats")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  app.add_option("--http_listen", front.http_listen,
                 "HOST:PORT for HTTP: /healthz, /readyz, /metrics, /v1/jobs, the status page at "
                 "/ and each job's at /jobs/ID (default: no HTTP); port 0 picks a free port");
  app.add_option("--http_port_file", front.http_port_file,
                 "Write the HTTP port bound to this file");
  app.add_option("--advertise_address", front.advertise_address,
                 "HOST:PORT where workers and clients reach this coordinator, as standbys name "
                 "the leader (default: --listen's, with this host's name for 0.0.0.0)");
  app.add_option("--leader_lease_ms", leading.lease_ms,
                 "With --state_db: how long the leader's lease lasts unrenewed; a standby takes "
                 "over this long after the leader stops")
      ->capture_default_str()
      ->check(CLI::Range(1000, 600000));
  app.add_option("--client_token_file", client_token_file,
                 "File holding the clients' bearer token (or RETRAIN_CLIENT_TOKEN)");
  app.add_option("--worker_token_file", worker_token_file,
                 "File holding the workers' bearer token (or RETRAIN_WORKER_TOKEN)");
  app.add_option("--tls_cert_file", tls.cert_file,
                 "PEM certificate chain: serve gRPC and HTTP over TLS");
  app.add_option("--tls_key_file", tls.key_file, "PEM private key of --tls_cert_file");
  app.add_option("--tls_client_ca_file", tls.ca_file,
                 "PEM CA: workers must present a client certificate it signed (mutual TLS)");
  app.add_option("--max_pending_jobs_per_client", options.max_pending_jobs_per_client,
                 "Unfinished (queued or running) jobs one client host may have at once")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max_finished_jobs_in_memory", options.max_finished_jobs_in_memory,
                 "Finished jobs kept in memory (the newest); older ones are read from the state "
                 "database when asked for")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max_watch_streams", max_watch_streams, "WatchJob streams open at once")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max_request_mib", front.max_request_mib, "Largest gRPC request, in MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--log_format", log_format, "text, or json: one object per line for collectors")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log_level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  retrain::SetLogLevel(log_level);
  retrain::SetLogFormat(log_format);
  auto log = retrain::Logger("server");
  if (auto s = retrain::server::CheckStateFlags(state); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  if (!state.migrate_from_sqlite.empty()) {
    auto copied = retrain::server::MigrateFromSqlite(state);
    if (!copied.ok()) return Fail(std::string(copied.status().message()));
    log->info("{}", *copied);
    return 0;
  }

  // Tokens, TLS and addresses are checked before the state is opened.
  auto client_token =
      retrain::LoadToken("--client_token_file", client_token_file, "RETRAIN_CLIENT_TOKEN");
  if (!client_token.ok()) return Fail(std::string(client_token.status().message()));
  auto worker_token =
      retrain::LoadToken("--worker_token_file", worker_token_file, "RETRAIN_WORKER_TOKEN");
  if (!worker_token.ok()) return Fail(std::string(worker_token.status().message()));
  if (client_token->empty() != worker_token->empty()) {
    return Fail(
        "give both tokens or neither: --client_token_file (RETRAIN_CLIENT_TOKEN) for clients and "
        "--worker_token_file (RETRAIN_WORKER_TOKEN) for workers");
  }
  auto credentials = retrain::ServerCredentialsFrom(tls);
  if (!credentials.ok()) return Fail(std::string(credentials.status().message()));
  const retrain::server::AccessPolicy access(*client_token, *worker_token,
                                             /*worker_certificates_required=*/!tls.ca_file.empty());
  if (!access.enabled()) {
    for (const std::string* address : {&front.listen, &front.http_listen}) {
      if (!address->empty() && !IsLoopback(*address)) {
        return Fail("without tokens the server listens on loopback only, and " + *address +
                    " is not: give --client_token_file and --worker_token_file (or "
                    "RETRAIN_CLIENT_TOKEN and RETRAIN_WORKER_TOKEN), or listen on 127.0.0.1");
      }
    }
  }
  if (options.data_roots.empty()) options.data_roots.push_back(std::filesystem::current_path());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  StopSignal stop;
  std::thread watcher = retrain::WatchStopSignals([&](int sig) {
    log->info("signal {}: shutting down", sig);
    stop.Set();
  });
  // With PostgreSQL, coordinators share the database and one leads: stand
  // by, answering only with refusals that name the leader, until this one
  // does.
  std::unique_ptr<retrain::server::Leadership> leadership;
  std::atomic<retrain::server::Leadership*> known{nullptr};
  auto standby_message = [&known] {
    auto* l = known.load();
    return l ? l->StandbyMessage()
             : std::string("this coordinator is standing by (connecting to the state database)");
  };
  retrain::server::StandbyService refusals(standby_message);
  std::unique_ptr<retrain::server::GrpcFrontEnd> grpc_standby;
  std::unique_ptr<retrain::server::HttpGateway> http_standby;
  int64_t epoch = 0;
  if (!state.state_db.empty()) {
    auto grpc = retrain::server::StartGrpc(front, *credentials, [&](grpc::ServerBuilder& b) {
      b.RegisterCallbackGenericService(&refusals);
    });
    if (!grpc.ok()) return Fail(std::string(grpc.status().message()));
    grpc_standby = *std::move(grpc);
    StopServingHealth(*grpc_standby->server);
    if (!front.http_listen.empty()) {
      auto gateway = retrain::server::HttpGateway::StartStandby(front.http_listen, tls.cert_file,
                                                                tls.key_file, standby_message);
      if (!gateway.ok()) return Fail(std::string(gateway.status().message()));
      http_standby = *std::move(gateway);
      auto s = retrain::server::WritePortFile("--http_port_file", front.http_port_file,
                                              http_standby->port());
      if (!s.ok()) return Fail(std::string(s.message()));
    }
    // The leader serves where the standby was found.
    front.KeepPorts(grpc_standby->port, http_standby ? http_standby->port() : 0);
    auto lease = retrain::server::OpenLeaderLease(state, leading.lease_ms,
                                                  front.Advertised(grpc_standby->port),
                                                  [&stop] { return stop.IsSet(); });
    if (!lease.ok()) return Fail(std::string(lease.status().message()));
    if (*lease == nullptr) {  // stopped while waiting for the database
      watcher.join();
      return 0;
    }
    leadership = std::make_unique<retrain::server::Leadership>(*std::move(lease), leading);
    known = leadership.get();
    auto won = leadership->WaitToLead([&stop] { return stop.IsSet(); });
    if (!won.ok()) return Fail(std::string(won.status().message()));
    if (*won == 0) {
      watcher.join();
      return 0;
    }
    epoch = *won;
    // Renewed from now on, while the state loads.
    leadership->KeepRenewing(retrain::server::RestartAsStandby);
    options.on_store_failure = [](const absl::Status& s) {
      retrain::server::RestartAsStandby(std::string(s.message()));
    };
  }

  auto store = retrain::server::OpenStateStore(state, epoch);
  if (!store.ok()) return Fail(std::string(store.status().message()));
  const std::string state_description = (*store)->Describe();
  auto coordinator = retrain::server::Coordinator::Create(options, *std::move(store));
  if (!coordinator.ok()) return Fail(std::string(coordinator.status().message()));
  // The state is loaded: the standby's ports go to the leader's front-ends
  // (clients meanwhile see a refused connection for a moment, and retry).
  if (grpc_standby) grpc_standby->Stop();
  http_standby.reset();
  retrain::server::JobServiceImpl job_service(**coordinator, access, max_watch_streams);
  retrain::server::WorkerServiceImpl worker_service(**coordinator, access);
  retrain::server::Metrics metrics(**coordinator);
  std::atomic<bool> ready{false};

  auto grpc_server =
      retrain::server::StartGrpc(front, *credentials, [&](grpc::ServerBuilder& b) {
        b.experimental().SetInterceptorCreators(retrain::server::RpcMetricsInterceptors(metrics));
        b.RegisterService(&job_service);
        b.RegisterService(&worker_service);
      });
  if (!grpc_server.ok()) return Fail(std::string(grpc_server.status().message()));
  grpc::Server* server = (*grpc_server)->server.get();
  const int port = (*grpc_server)->port;
  // The state database is open (Create() opened it): healthy from here on.
  for (const char* service : {"", "retrain.v1.JobService", "retrain.v1.WorkerService"}) {
    server->GetHealthCheckService()->SetServingStatus(service, true);
  }
  std::unique_ptr<retrain::server::HttpGateway> http;
  if (!front.http_listen.empty()) {
    auto gateway = retrain::server::HttpGateway::Start(
        front.http_listen, tls.cert_file, tls.key_file, **coordinator, access, metrics,
        [&ready] { return ready.load(); });
    if (!gateway.ok()) return Fail(std::string(gateway.status().message()));
    http = *std::move(gateway);
    auto s = retrain::server::WritePortFile("--http_port_file", front.http_port_file, http->port());
    if (!s.ok()) return Fail(std::string(s.message()));
    log->info("HTTP on {} (port {}): /healthz /readyz /metrics /v1/jobs, status page at /",
              front.http_listen, http->port());
  }
  ready = true;
  log->info("listening on {} (port {}{}), state in {}, data roots: {}", front.listen, port,
            tls.cert_file.empty() ? ", plaintext"
                                  : (tls.ca_file.empty() ? ", TLS" : ", TLS, workers by certificate"),
            state_description, fmt::join(options.data_roots, ", "));
  if (!access.enabled()) {
    log->warn("no tokens configured: loopback only, and every local process may call the API "
              "(set --client_token_file and --worker_token_file to require tokens)");
  }

  stop.Wait();
  ready = false;
  StopServingHealth(*server);
  (*grpc_server)->Stop();
  watcher.join();
  http.reset();
  coordinator->reset();
  // After the last write: a standby takes over at once.
  if (leadership) leadership->Resign();
  log->info("stopped");
  return 0;
}
