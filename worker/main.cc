// retrain-worker: runs the coordinator's tasks on this machine.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include "common/bearer_token.h"
#include "common/logging.h"
#include "common/stop_signals.h"
#include "common/system_memory.h"
#include "common/tls_credentials.h"
#include "worker/agent.h"
#include "worker/image/image_library.h"

namespace {

// A worker's conversions and trainers are batch work: by default they yield
// the CPU to the machine's other processes (a coordinator, a shell, the CLI)
// when they share it, and take all of it when nothing else wants it.
constexpr int kDefaultNice = 10;

// Lowers this process's CPU priority to nice value `nice` unless it already
// runs lower. Called before any thread starts: Linux keeps a nice value per
// thread, and new threads and child processes (the trainers) inherit it.
void LowerPriority(int nice) {
  errno = 0;
  const int now = getpriority(PRIO_PROCESS, 0);
  if (errno != 0 || now >= nice) return;
  if (setpriority(PRIO_PROCESS, 0, nice) != 0) {
    std::cerr << "retrain-worker: cannot set --nice " << nice << ": " << std::strerror(errno)
              << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  retrain::BlockStopSignals();
  retrain::worker::AgentOptions options;
  if (const char* env = std::getenv("RETRAIN_SERVER")) options.server = env;
  if (const char* env = std::getenv("RETRAIN_WORKER_HEALTH_FILE")) options.health_file = env;
  options.threads = std::max(1u, std::thread::hardware_concurrency());
  std::string log_level = "info";
  std::string log_format = "text";
  std::string token_file;
  int nice = kDefaultNice;
  retrain::TlsFiles tls;
  CLI::App app{"retrain-worker: registers with a retrain coordinator and runs its tasks "
               "(image validation and shard writing).\n"
               "Example: retrain-worker --server 127.0.0.1:50051 --threads 4"};
  app.add_option("--server", options.server,
                 "Coordinator HOST:PORT, or several, comma-separated, that share a PostgreSQL "
                 "state database: the one that leads is followed (or RETRAIN_SERVER)");
  app.add_option("--threads", options.threads, "Image conversion threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--nice", nice,
                 "CPU priority of the worker and its trainers as nice(1) gives it (0-19): higher "
                 "yields more to the machine's other processes when they share its cores")
      ->capture_default_str()
      ->check(CLI::Range(0, 19));
  app.add_option("--unreachable_timeout_s", options.unreachable_timeout_s,
                 "Exit when the coordinator is unreachable this long")
      ->capture_default_str();
  app.add_option("--token_file", token_file,
                 "File holding the coordinator's worker token (or RETRAIN_WORKER_TOKEN)");
  app.add_option("--advertise_host", options.advertise_host,
                 "Host or IP other workers reach this one at, for jobs over several workers "
                 "(default: the hostname; in Kubernetes the pod IP)");
  app.add_option("--health_file", options.health_file,
                 "File touched at every heartbeat the coordinator acknowledges (every few "
                 "seconds): a health check reads its age (or RETRAIN_WORKER_HEALTH_FILE)");
  app.add_option("--tls_ca_file", tls.ca_file,
                 "PEM CA of the coordinator's certificate: connect over TLS");
  app.add_option("--tls_cert_file", tls.cert_file,
                 "PEM client certificate for a coordinator that wants one (mutual TLS)");
  app.add_option("--tls_key_file", tls.key_file, "PEM private key of --tls_cert_file");
  app.add_option("--log_format", log_format, "text, or json: one object per line for collectors")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log_level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  LowerPriority(nice);
  retrain::KeepFreedMemoryForReuse(retrain::kRecordsHeapReuse);
  if (options.server.empty()) {
    std::cerr << "retrain-worker: --server (or RETRAIN_SERVER) is required\n";
    return 2;
  }
  auto token = retrain::LoadToken("--token_file", token_file, "RETRAIN_WORKER_TOKEN");
  if (!token.ok()) {
    std::cerr << "retrain-worker: " << token.status().message() << "\n";
    return 2;
  }
  options.token = *token;
  auto credentials = retrain::ChannelCredentialsFrom(tls);
  if (!credentials.ok()) {
    std::cerr << "retrain-worker: " << credentials.status().message() << "\n";
    return 2;
  }
  options.credentials = *credentials;
  retrain::SetLogLevel(log_level);
  retrain::SetLogFormat(log_format);
  if (auto s = retrain::image::InitImageLibrary(argv[0]); !s.ok()) {
    std::cerr << "retrain-worker: " << s.message() << "\n";
    return 1;
  }
  auto connected = retrain::worker::Agent::Connect(options);
  if (!connected.ok()) {
    std::cerr << "retrain-worker: " << connected.status().message() << "\n";
    return 2;
  }
  retrain::worker::Agent& agent = **connected;

  std::thread watcher = retrain::WatchStopSignals([&](int sig) {
    retrain::Logger("worker")->info("signal {}: stopping", sig);
    agent.Stop();
  });
  watcher.detach();

  absl::Status s = agent.Run();
  if (!s.ok()) {
    std::cerr << "retrain-worker: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
