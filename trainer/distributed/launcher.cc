#include "trainer/distributed/launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "trainer/trainer_error.h"

namespace retrain::trainer {

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kRankEnv[] = "RETRAIN_RANK";
constexpr char kWorldSizeEnv[] = "RETRAIN_WORLD_SIZE";
constexpr char kLocalRankEnv[] = "RETRAIN_LOCAL_RANK";
constexpr char kLocalWorldSizeEnv[] = "RETRAIN_LOCAL_WORLD_SIZE";
constexpr char kMasterAddrEnv[] = "RETRAIN_MASTER_ADDR";
constexpr char kMasterPortEnv[] = "RETRAIN_MASTER_PORT";
constexpr char kTimeoutEnv[] = "RETRAIN_COLLECTIVE_TIMEOUT_SECS";
constexpr char kCudaEnv[] = "RETRAIN_USE_CUDA";

volatile std::sig_atomic_t g_stop_signal = 0;
void OnStopSignal(int signal) { g_stop_signal = signal; }

// A port that is free on this host now (the kernel's choice).
int FreePort(const std::string& addr) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = 0;
  if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) sa.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof sa;
  const bool ok = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0;
  if (fd >= 0) close(fd);
  if (!ok) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       "cannot find a free port on " + addr + " (" + std::strerror(errno) +
                           "); give --master_port");
  }
  return ntohs(sa.sin_port);
}

struct Child {
  int rank = 0;
  pid_t pid = -1;
  bool running = true;
  bool stopped = false;  // signalled by the launcher (not a cause of failure)
  int status = 0;        // waitpid status once ended
};

std::string DescribeEnd(const Child& c, int world_size) {
  std::string who = "rank " + std::to_string(c.rank) + " of " + std::to_string(world_size) +
                    " (pid " + std::to_string(c.pid) + ")";
  if (c.stopped && WIFSIGNALED(c.status)) return who + " was stopped by the launcher";
  if (WIFSIGNALED(c.status)) {
    const int sig = WTERMSIG(c.status);
    return who + " was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  const int code = WEXITSTATUS(c.status);
  return who + " exited with code " + std::to_string(code) + " (" + spec::DescribeExitCode(code) + ")";
}

int ExitCodeOfStatus(int status) {
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

bool Failed(const Child& c) { return !c.running && (WIFSIGNALED(c.status) || WEXITSTATUS(c.status) != 0); }

pid_t StartRank(char** argv, const LaunchOptions& o, int local_rank, int world_size, int port) {
  const int rank = o.node_rank * o.ranks_per_node + local_rank;
  const pid_t launcher = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    throw TrainerError(TrainerError::Kind::kInternal,
                       std::string("cannot start a rank: fork: ") + std::strerror(errno));
  }
  if (pid > 0) return pid;
  // Child: die with the launcher; the rank comes through the environment.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != launcher) _exit(1);
  setenv(kRankEnv, std::to_string(rank).c_str(), 1);
  setenv(kWorldSizeEnv, std::to_string(world_size).c_str(), 1);
  setenv(kLocalRankEnv, std::to_string(local_rank).c_str(), 1);
  setenv(kLocalWorldSizeEnv, std::to_string(o.ranks_per_node).c_str(), 1);
  setenv(kMasterAddrEnv, o.master_addr.c_str(), 1);
  setenv(kMasterPortEnv, std::to_string(port).c_str(), 1);
  setenv(kTimeoutEnv, std::to_string(o.collective_timeout_secs).c_str(), 1);
  setenv(kCudaEnv, o.use_cuda ? "1" : "0", 1);
  // NCCL's watchdog turns a stuck collective into an error (both names:
  // LibTorch 1.x and 2.x).
  setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
  setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1", 0);
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  execv("/proc/self/exe", argv);
  std::cerr << "retrain-trainer: cannot start rank " << rank << ": " << std::strerror(errno)
            << "\n";
  _exit(127);
}

void SignalRunning(std::vector<Child>& children, int signal) {
  for (auto& c : children) {
    if (c.running) kill(c.pid, signal);
  }
}

// Reaps every child that has ended; true when one did.
bool ReapEnded(std::vector<Child>& children, bool block) {
  int status = 0;
  const pid_t pid = waitpid(-1, &status, block ? 0 : WNOHANG);
  if (pid <= 0) return false;
  for (auto& c : children) {
    if (c.pid == pid) {
      c.running = false;
      c.status = status;
    }
  }
  return true;
}

bool AnyRunning(const std::vector<Child>& children) {
  for (const auto& c : children) {
    if (c.running) return true;
  }
  return false;
}

// After a failure or a stop request: SIGTERM now, SIGKILL after the grace.
void StopAll(std::vector<Child>& children, int grace_secs) {
  for (auto& c : children) c.stopped = c.stopped || c.running;
  SignalRunning(children, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(grace_secs);
  while (AnyRunning(children)) {
    if (ReapEnded(children, /*block=*/false)) continue;
    if (Clock::now() > deadline) {
      SignalRunning(children, SIGKILL);
      while (AnyRunning(children) && ReapEnded(children, /*block=*/true)) {
      }
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::optional<int> EnvInt(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::atoi(v);
}

}  // namespace

int LaunchRanks(char** argv, const LaunchOptions& o) {
  if (o.ranks_per_node < 1 || o.nnodes < 1 || o.node_rank < 0 || o.node_rank >= o.nnodes) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       "--node_rank must be in [0, --nnodes) and the ranks per node at least 1");
  }
  int port = o.master_port;
  if (port == 0) {
    if (o.nnodes > 1) {
      throw TrainerError(TrainerError::Kind::kConfig,
                         "--master_port is required with --nnodes > 1 (every host must name the "
                         "same port of --master_addr)");
    }
    port = FreePort(o.master_addr);
  }
  const int world_size = o.nnodes * o.ranks_per_node;
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  std::vector<Child> children;
  for (int i = 0; i < o.ranks_per_node; ++i) {
    Child c;
    c.rank = o.node_rank * o.ranks_per_node + i;
    c.pid = StartRank(argv, o, i, world_size, port);
    children.push_back(c);
  }
  std::cerr << "retrain-trainer: started ranks " << children.front().rank << "-"
            << children.back().rank << " of " << world_size << " (rendezvous " << o.master_addr
            << ":" << port << ")\n";

  while (AnyRunning(children)) {
    if (g_stop_signal) {
      // Ranks checkpoint and stop together; the grace bounds how long.
      StopAll(children, o.stop_grace_secs);
      break;
    }
    if (!ReapEnded(children, /*block=*/false)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    bool failed = false;
    for (const auto& c : children) failed = failed || Failed(c);
    if (!failed) continue;
    // Collect ranks that end at about the same time (a peer's death makes
    // the others fail too), then stop the rest.
    const auto settle = Clock::now() + std::chrono::milliseconds(300);
    while (AnyRunning(children) && Clock::now() < settle) {
      if (!ReapEnded(children, /*block=*/false)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    StopAll(children, o.stop_grace_secs);
    break;
  }
  // The cause: a rank killed by a signal (the others' errors follow from
  // it), else the first rank that failed.
  const Child* cause = nullptr;
  for (const auto& c : children) {
    if (Failed(c) && !c.stopped && WIFSIGNALED(c.status) && cause == nullptr) {
      cause = &c;
    }
  }
  for (const auto& c : children) {
    if (cause == nullptr && Failed(c) && !c.stopped) cause = &c;
  }
  for (const auto& c : children) {
    if (cause == nullptr && Failed(c)) cause = &c;
  }
  if (cause == nullptr) return 0;
  std::string others;
  for (const auto& c : children) {
    if (&c != cause && Failed(c)) others += "; " + DescribeEnd(c, world_size);
  }
  std::cerr << "retrain-trainer: " << DescribeEnd(*cause, world_size) << others
            << (g_stop_signal || children.size() == 1 ? "" : "; stopped the other ranks") << "\n";
  return ExitCodeOfStatus(cause->status);
}

bool RankFromEnvironment(RankOptions* rank) {
  const auto r = EnvInt(kRankEnv);
  const auto w = EnvInt(kWorldSizeEnv);
  if (!r || !w) return false;
  rank->rank = *r;
  rank->world_size = *w;
  rank->local_rank = EnvInt(kLocalRankEnv).value_or(0);
  rank->local_world_size = EnvInt(kLocalWorldSizeEnv).value_or(1);
  if (const char* addr = std::getenv(kMasterAddrEnv)) rank->master_addr = addr;
  rank->master_port = EnvInt(kMasterPortEnv).value_or(rank->master_port);
  rank->collective_timeout_secs = EnvInt(kTimeoutEnv).value_or(rank->collective_timeout_secs);
  rank->use_cuda = EnvInt(kCudaEnv).value_or(0) != 0;
  return true;
}

}  // namespace retrain::trainer
