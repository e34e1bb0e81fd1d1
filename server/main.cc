// retrain-server: the coordinator.
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "common/files.h"
#include "common/logging.h"
#include "server/coordinator.h"
#include "server/grpc_services.h"

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

}  // namespace

int main(int argc, char** argv) {
  retrain::server::CoordinatorOptions options;
  std::string listen = "127.0.0.1:50051";
  std::string port_file;
  std::string log_level = "info";
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
  app.add_option("--heartbeat_interval_ms", options.heartbeat_interval_ms,
                 "How often workers send heartbeats")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  app.add_option("--log_level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  retrain::SetLogLevel(log_level);
  auto log = retrain::Logger("server");

  if (options.data_roots.empty()) options.data_roots.push_back(std::filesystem::current_path());
  auto coordinator = retrain::server::Coordinator::Create(options);
  if (!coordinator.ok()) {
    std::cerr << "retrain-server: " << coordinator.status().message() << "\n";
    return 1;
  }
  retrain::server::JobServiceImpl job_service(**coordinator);
  retrain::server::WorkerServiceImpl worker_service(**coordinator);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&job_service);
  builder.RegisterService(&worker_service);
  builder.SetMaxReceiveMessageSize(64 << 20);
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
  log->info("listening on {} (port {}), state in {}, data roots: {}", listen, port,
            options.state_dir, fmt::join(options.data_roots, ", "));

  std::thread watcher = StartSignalWatcher([&](int sig) {
    log->info("signal {}: shutting down", sig);
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  });
  server->Wait();
  watcher.join();
  coordinator->reset();
  log->info("stopped");
  return 0;
}
