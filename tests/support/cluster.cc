#include "tests/support/cluster.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "common/coordinator_channel.h"
#include "common/job_states.h"

namespace retrain::testing {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;

Cluster::Cluster(std::string root, ClusterOptions options)
    : root_(std::move(root)), options_(options) {
  // Sanitizer builds run several times slower: leases scale with them so
  // that only the faults a test injects lose one.
  if (const char* scale = std::getenv("RETRAIN_TEST_TIME_SCALE")) {
    options_.lease_timeout_ms = static_cast<int>(options_.lease_timeout_ms * std::atof(scale));
    options_.leader_lease_ms = static_cast<int>(options_.leader_lease_ms * std::atof(scale));
  }
  servers_.resize(std::max(1, options_.coordinators));
  const char* store = std::getenv("RETRAIN_TEST_STORE");
  if (options_.state_db.empty() && store != nullptr && std::string(store) == "postgres") {
    own_database_ = std::make_unique<PostgresServer>();
    options_.state_db = own_database_->uri();
    options_.state_db_password_file = own_database_->password_file();
  }
}

Cluster::~Cluster() {
  workers_.clear();
  servers_.clear();
  own_database_.reset();
}

namespace {

// Writes `token` to a 0600 file under `root` and returns its path.
}  // namespace

std::string TokenFile(const std::string& dir, const std::string& name, const std::string& token) {
  const std::string path = dir + "/" + name + ".token";
  std::ofstream(path) << token << "\n";
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  return path;
}

void Cluster::Authorize(grpc::ClientContext& ctx) const {
  if (!options_.client_token.empty()) {
    ctx.AddMetadata("authorization", "Bearer " + options_.client_token);
  }
}

std::string Cluster::ServerFile(int i, const std::string& suffix) const {
  return servers_.size() == 1 ? root_ + "/server" + suffix
                              : root_ + "/server-" + std::to_string(i) + suffix;
}

void Cluster::StartOne(int i, int port) {
  const std::string port_file = ServerFile(i, ".port");
  const std::string http_port_file = ServerFile(i, ".http_port");
  fs::remove(port_file);
  fs::remove(http_port_file);
  std::vector<std::string> argv{
      BinDir() + "/retrain-server", "--listen", "127.0.0.1:" + std::to_string(port),
      "--port_file", port_file, "--data_root", root_,
      "--lease_timeout_ms", std::to_string(options_.lease_timeout_ms),
      "--heartbeat_interval_ms", std::to_string(options_.heartbeat_interval_ms)};
  if (options_.state_db.empty()) {
    argv.insert(argv.end(), {"--state_dir", root_ + "/state"});
  } else {
    const bool own = i < static_cast<int>(options_.state_db_of.size());
    argv.insert(argv.end(), {"--state_db", own ? options_.state_db_of[i] : options_.state_db,
                             "--state_db_password_file",
                             options_.state_db_password_file, "--leader_lease_ms",
                             std::to_string(options_.leader_lease_ms)});
  }
  if (options_.http) {
    argv.insert(argv.end(), {"--http_listen", "127.0.0.1:0", "--http_port_file", http_port_file});
  }
  if (!options_.client_token.empty()) {
    argv.insert(argv.end(),
                {"--client_token_file", TokenFile(root_, "client", options_.client_token),
                 "--worker_token_file", TokenFile(root_, "worker", options_.worker_token)});
  }
  argv.insert(argv.end(), options_.server_args.begin(), options_.server_args.end());
  servers_[i] = Process::Start(argv, ServerFile(i, ".log"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!fs::exists(port_file) || (options_.http && !fs::exists(http_port_file))) {
    ASSERT_TRUE(servers_[i]->Running()) << "retrain-server exited:\n" << ServerLog();
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "retrain-server did not start";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ports_[i] = std::stoi(ReadAll(port_file));
  if (options_.http && i == 0) http_port_ = std::stoi(ReadAll(http_port_file));
}

void Cluster::StartServer(int port) {
  ports_.resize(servers_.size());
  // A coordinator on PostgreSQL that stops leading starts again with the
  // same --listen: it needs a fixed port to come back where it was.
  if (!options_.state_db.empty() && port == 0) port = ports_[0] != 0 ? ports_[0] : FreePort();
  if (servers_.size() == 1) {
    StartOne(0, port);
  } else {
    for (size_t i = 0; i < servers_.size(); ++i) {
      if (ports_[i] == 0) ports_[i] = FreePort();
      StartOne(static_cast<int>(i), ports_[i]);
    }
  }
  address_.clear();
  for (int p : ports_) {
    address_ += (address_.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(p);
  }
  grpc::ChannelArguments args;
  auto channel =
      CoordinatorChannel("--server", address_, grpc::InsecureChannelCredentials(), args);
  ASSERT_TRUE(channel.ok()) << channel.status();
  stub_ = v1::JobService::NewStub(*channel);
  if (!options_.state_db.empty()) {
    ASSERT_GE(WaitForLeader(), 0) << "no coordinator leads:\n" << ServerLog();
    return;
  }
  ASSERT_TRUE(
      (*channel)->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)));
}

void Cluster::KillServer(int sig) {
  for (auto& server : servers_) {
    if (server == nullptr) continue;
    server->Signal(sig);
    server->Wait();
  }
}

bool Cluster::Leads(int i) {
  if (servers_[i] == nullptr || !servers_[i]->Running()) return false;
  auto stub = v1::JobService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(ports_[i]), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  Authorize(ctx);
  v1::ListWorkersRequest req;
  v1::ListWorkersResponse resp;
  return stub->ListWorkers(&ctx, req, &resp).ok();
}

int Cluster::WaitForLeader(std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (size_t i = 0; i < servers_.size(); ++i) {
      if (Leads(static_cast<int>(i))) return static_cast<int>(i);
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void Cluster::KillCoordinator(int i, int sig) {
  servers_[i]->Signal(sig);
  servers_[i]->Wait();
}

void Cluster::StartCoordinator(int i) { StartOne(i, ports_[i]); }

Process& Cluster::StartWorker(int threads, int uid, const std::string& server) {
  const int n = static_cast<int>(workers_.size());
  std::string binary = BinDir() + "/retrain-worker";
  if (uid >= 0) {
    // Another user may not be able to enter the build tree (a checkout in a
    // 0700 temporary directory or home): it runs a copy kept under root_.
    const std::string copy = root_ + "/retrain-worker";
    fs::copy_file(binary, copy, fs::copy_options::overwrite_existing);
    fs::permissions(copy, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    binary = copy;
  }
  std::vector<std::string> argv{binary, "--server", server.empty() ? address_ : server, "--threads", std::to_string(threads)};
  if (!options_.worker_token.empty()) {
    const std::string file = TokenFile(root_, "worker-" + std::to_string(n), options_.worker_token);
    if (uid >= 0) chown(file.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(-1));
    argv.insert(argv.end(), {"--token_file", file});
  }
  workers_.push_back(Process::Start(argv, WorkerLogPath(n), uid));
  return *workers_.back();
}

bool Cluster::JobEnded(const std::string& job_id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  Authorize(ctx);
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  v1::Job job;
  return stub_->GetJob(&ctx, req, &job).ok() && IsFinalState(job.state());
}

v1::Job Cluster::WaitForJob(const std::string& job_id,
                            const std::function<bool(const v1::Job&)>& done,
                            std::chrono::seconds timeout, std::chrono::milliseconds poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  v1::Job job;
  while (std::chrono::steady_clock::now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    Authorize(ctx);
    v1::GetJobRequest req;
    req.set_job_id(job_id);
    if (stub_->GetJob(&ctx, req, &job).ok() && done(job)) return job;
    std::this_thread::sleep_for(poll);
  }
  ADD_FAILURE() << "job " << job_id << " did not reach the expected point; last state "
                << StateName(job.state()) << "; server log:\n"
                << ServerLog() << WorkerLogTails();
  return job;
}

v1::Job Cluster::WaitForEnd(const std::string& job_id, std::chrono::seconds timeout) {
  return WaitForJob(job_id, [](const v1::Job& j) { return IsFinalState(j.state()); }, timeout);
}

CommandResult Cluster::Cli(std::vector<std::string> args) {
  args.insert(args.begin(), {BinDir() + "/retrain", "--server", address_});
  if (!options_.client_token.empty()) {
    args.insert(args.end(), {"--token_file", TokenFile(root_, "cli", options_.client_token)});
  }
  return RunCommand(args);
}

std::string Cluster::WorkerLogPath(int n) const {
  return root_ + "/worker-" + std::to_string(n) + ".log";
}

std::string Cluster::WorkerLogTails() const {
  constexpr size_t kTailBytes = 4000;
  std::string all;
  for (size_t i = 0; i < workers_.size(); ++i) {
    const std::string log = ReadAll(WorkerLogPath(static_cast<int>(i)));
    all += "--- worker " + std::to_string(i) + ", last " + std::to_string(kTailBytes) +
           " bytes ---\n" + log.substr(log.size() > kTailBytes ? log.size() - kTailBytes : 0);
  }
  return all;
}

std::string Cluster::ServerLog() const {
  if (servers_.size() == 1) return ReadAll(ServerFile(0, ".log"));
  std::string all;
  for (size_t i = 0; i < servers_.size(); ++i) {
    all += "--- coordinator " + std::to_string(i) + " ---\n" +
           ReadAll(ServerFile(static_cast<int>(i), ".log"));
  }
  return all;
}

}  // namespace retrain::testing
