// retrain-server: the coordinator.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <atomic>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "common/bearer_token.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/tls_credentials.h"
#include "server/access_policy.h"
#include "server/coordinator.h"
#include "server/grpc_services.h"
#include "server/http_gateway.h"
#include "server/metrics.h"
#include "server/rpc_metrics_interceptor.h"

namespace {

// Blocks SIGINT/SIGTERM in every thread and returns a thread that waits for
// one and then calls `stop`.
std::thread StartSignalWatcher(std::function<void(int)> stop) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return std::thread([set, stop = std::move(stop)] {
    int sig = 0;
    sigwait(&set, &sig);
    stop(sig);
  });
}

// Whether HOST:PORT names a loopback address (127.0.0.0/8, ::1, localhost).
bool IsLoopback(const std::string& listen) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

int Fail(const std::string& message) {
  std::cerr << "retrain-server: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  retrain::server::CoordinatorOptions options;
  std::string listen = "127.0.0.1:50051";
  std::string port_file;
  std::string http_listen, http_port_file;
  std::string client_token_file, worker_token_file;
  int max_watch_streams = 256;
  int max_request_mib = 64;
  retrain::TlsFiles tls;
  std::string log_level = "info";
  std::string log_format = "text";
  CLI::App app{"retrain-server: the retrain coordinator. Accepts jobs over gRPC, keeps them in "
               "SQLite under --state_dir, and hands their tasks to retrain-worker processes.\n"
               "Example: retrain-server --listen 127.0.0.1:50051 --state_dir /var/lib/retrain "
               "--data_root /data"};
  app.add_option("--listen", listen, "HOST:PORT to serve on; port 0 picks a free port")
      ->capture_default_str();
  app.add_option("--state_dir", options.state_dir, "Directory of the state database")
      ->required();
  app.add_option("--data_root", options.data_roots,
                 "Directory requests may read and write (repeatable; default: the working "
                 "directory)");
  app.add_option("--port_file", port_file, "Write the port actually bound to this file");
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
  app.add_option("--http_listen", http_listen,
                 "HOST:PORT for HTTP: /healthz, /readyz, /metrics, /v1/jobs, the status page at "
                 "/ (default: no HTTP); port 0 picks a free port");
  app.add_option("--http_port_file", http_port_file, "Write the HTTP port bound to this file");
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
  app.add_option("--max_request_mib", max_request_mib, "Largest gRPC request, in MiB")
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
    for (const std::string* address : {&listen, &http_listen}) {
      if (!address->empty() && !IsLoopback(*address)) {
        return Fail("without tokens the server listens on loopback only, and " + *address +
                    " is not: give --client_token_file and --worker_token_file (or "
                    "RETRAIN_CLIENT_TOKEN and RETRAIN_WORKER_TOKEN), or listen on 127.0.0.1");
      }
    }
  }
  if (options.data_roots.empty()) options.data_roots.push_back(std::filesystem::current_path());
  auto coordinator = retrain::server::Coordinator::Create(options);
  if (!coordinator.ok()) {
    std::cerr << "retrain-server: " << coordinator.status().message() << "\n";
    return 1;
  }
  retrain::server::JobServiceImpl job_service(**coordinator, access, max_watch_streams);
  retrain::server::WorkerServiceImpl worker_service(**coordinator, access);
  retrain::server::Metrics metrics(**coordinator);
  std::atomic<bool> ready{false};

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.experimental().SetInterceptorCreators(retrain::server::RpcMetricsInterceptors(metrics));
  int port = 0;
  builder.AddListeningPort(listen, *credentials, &port);
  builder.RegisterService(&job_service);
  builder.RegisterService(&worker_service);
  builder.SetMaxReceiveMessageSize(max_request_mib << 20);
  // Streams one client connection may hold open at once.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 100);
  builder.SetMaxSendMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "retrain-server: cannot listen on " << listen
              << " (address in use or not valid)\n";
    return 1;
  }
  if (!port_file.empty()) {
    auto s = retrain::WriteFileAtomically(port_file, std::to_string(port) + "\n");
    if (!s.ok()) {
      std::cerr << "retrain-server: --port_file: " << s.message() << "\n";
      return 1;
    }
  }
  // The state database is open (Create() opened it): healthy from here on.
  for (const char* service : {"", "retrain.v1.JobService", "retrain.v1.WorkerService"}) {
    server->GetHealthCheckService()->SetServingStatus(service, true);
  }
  std::unique_ptr<retrain::server::HttpGateway> http;
  if (!http_listen.empty()) {
    auto gateway = retrain::server::HttpGateway::Start(
        http_listen, tls.cert_file, tls.key_file, **coordinator, access, metrics,
        [&ready] { return ready.load(); });
    if (!gateway.ok()) return Fail(std::string(gateway.status().message()));
    http = *std::move(gateway);
    if (!http_port_file.empty()) {
      auto s = retrain::WriteFileAtomically(http_port_file, std::to_string(http->port()) + "\n");
      if (!s.ok()) return Fail("--http_port_file: " + std::string(s.message()));
    }
    log->info("HTTP on {} (port {}): /healthz /readyz /metrics /v1/jobs, status page at /",
              http_listen, http->port());
  }
  ready = true;
  log->info("listening on {} (port {}{}), state in {}, data roots: {}", listen, port,
            tls.cert_file.empty() ? ", plaintext"
                                  : (tls.ca_file.empty() ? ", TLS" : ", TLS, workers by certificate"),
            options.state_dir, fmt::join(options.data_roots, ", "));
  if (!access.enabled()) {
    log->warn("no tokens configured: loopback only, and every local process may call the API "
              "(set --client_token_file and --worker_token_file to require tokens)");
  }

  std::thread watcher = StartSignalWatcher([&](int sig) {
    log->info("signal {}: shutting down", sig);
    ready = false;
    server->GetHealthCheckService()->SetServingStatus(false);
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  });
  server->Wait();
  watcher.join();
  http.reset();
  coordinator->reset();
  log->info("stopped");
  return 0;
}
