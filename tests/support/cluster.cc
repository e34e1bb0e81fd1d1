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

#include "common/job_states.h"

namespace retrain::testing {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;

std::string BinDir() {
  const char* dir = std::getenv("RETRAIN_BIN_DIR");
  return dir ? dir : "build/bin";
}

std::string SourceDir() { return RETRAIN_SOURCE_DIR; }

TempDir::TempDir() {
  std::random_device rd;
  path_ = (fs::temp_directory_path() /
           ("retrain-test-" + std::to_string(getpid()) + "-" + std::to_string(rd())))
              .string();
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  // Unreadable test fixtures must not stop the cleanup.
  for (auto it = fs::recursive_directory_iterator(
           path_, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  }
  fs::remove_all(path_, ec);
}

namespace {

pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path, int uid = -1) {
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int err = err_path == out_path ? out : open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(out, 1);
    dup2(err, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    if (uid >= 0 && (setgid(uid) != 0 || setuid(uid) != 0)) _exit(126);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  return pid;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::unique_ptr<Process> Process::Start(const std::vector<std::string>& argv,
                                        const std::string& log_path, int uid) {
  return std::unique_ptr<Process>(new Process(Spawn(argv, log_path, log_path, uid)));
}

Process::~Process() {
  if (!reaped_) {
    kill(pid_, SIGKILL);
    Wait();
  }
}

void Process::Signal(int sig) {
  if (!reaped_) kill(pid_, sig);
}

int Process::Wait() {
  if (!reaped_) {
    waitpid(pid_, &status_, 0);
    reaped_ = true;
  }
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

bool Process::Running() {
  if (reaped_) return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
  return !reaped_;
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  TempDir dir;
  const std::string out = dir.path() + "/out", err = dir.path() + "/err";
  pid_t pid = Spawn(argv, out, err);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "command timed out: " << argv[0];
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadAll(out);
  r.err = ReadAll(err);
  return r;
}

Cluster::Cluster(std::string root, ClusterOptions options)
    : root_(std::move(root)), options_(options) {}

Cluster::~Cluster() {
  workers_.clear();
  server_.reset();
}

void Cluster::StartServer(int port) {
  const std::string port_file = root_ + "/server.port";
  fs::remove(port_file);
  server_ = Process::Start(
      {BinDir() + "/retrain-server", "--listen", "127.0.0.1:" + std::to_string(port),
       "--port_file", port_file, "--state_dir", root_ + "/state", "--data_root", root_,
       "--lease_timeout_ms", std::to_string(options_.lease_timeout_ms),
       "--heartbeat_interval_ms", std::to_string(options_.heartbeat_interval_ms)},
      root_ + "/server.log");
  ++server_starts_;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!fs::exists(port_file)) {
    ASSERT_TRUE(server_->Running()) << "retrain-server exited:\n" << ServerLog();
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "retrain-server did not start";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  port_ = std::stoi(ReadAll(port_file));
  address_ = "127.0.0.1:" + std::to_string(port_);
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)));
  stub_ = v1::JobService::NewStub(channel);
}

void Cluster::KillServer(int sig) {
  server_->Signal(sig);
  server_->Wait();
}

Process& Cluster::StartWorker(int threads, int uid) {
  const int n = static_cast<int>(workers_.size());
  workers_.push_back(Process::Start(
      {BinDir() + "/retrain-worker", "--server", address_, "--threads", std::to_string(threads)},
      root_ + "/worker-" + std::to_string(n) + ".log", uid));
  return *workers_.back();
}

v1::Job Cluster::WaitForJob(const std::string& job_id,
                            const std::function<bool(const v1::Job&)>& done,
                            std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  v1::Job job;
  while (std::chrono::steady_clock::now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::GetJobRequest req;
    req.set_job_id(job_id);
    if (stub_->GetJob(&ctx, req, &job).ok() && done(job)) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "job " << job_id << " did not reach the expected point; last state "
                << StateName(job.state()) << "; server log:\n"
                << ServerLog();
  return job;
}

v1::Job Cluster::WaitForEnd(const std::string& job_id, std::chrono::seconds timeout) {
  return WaitForJob(job_id, [](const v1::Job& j) { return IsFinalState(j.state()); }, timeout);
}

CommandResult Cluster::Cli(std::vector<std::string> args) {
  args.insert(args.begin(), {BinDir() + "/retrain", "--server", address_});
  return RunCommand(args);
}

std::string Cluster::ServerLog() const { return ReadAll(root_ + "/server.log"); }

}  // namespace retrain::testing
