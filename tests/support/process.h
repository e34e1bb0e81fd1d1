// Test support for running the project's binaries: where they are, a
// temporary directory, child processes that die with the test, and
// commands run to completion. No dependencies beyond GoogleTest, so the
// trainer's tests use it on machines that build only the trainer.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace retrain::testing {

// Where the project's binaries are (RETRAIN_BIN_DIR, set by CTest).
std::string BinDir();
// The source tree this test was built from.
std::string SourceDir();

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A child process with stdout and stderr going to `log_path`. It is
// SIGKILLed when the thread that started it ends (PR_SET_PDEATHSIG), so
// that a test that dies leaves no process behind: start long-lived
// processes from the test's main thread.
class Process {
 public:
  static std::unique_ptr<Process> Start(const std::vector<std::string>& argv,
                                        const std::string& log_path, int uid = -1);
  ~Process();  // SIGKILL and reap if still running
  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits for exit; returns the exit code, or 128 + signal.
  int Wait();
  bool Running();

 private:
  explicit Process(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool reaped_ = false;
  int status_ = 0;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// The bytes of a file, or "" when it cannot be read.
std::string ReadAll(const std::string& path);

// A loopback TCP port that was free a moment ago (for a server the test
// starts next).
int FreePort();

// Polls `done` until it holds or `timeout` passes; false when it never held.
bool Eventually(const std::function<bool()>& done,
                std::chrono::seconds timeout = std::chrono::seconds(60));

// Runs a command to completion (killing it after `timeout`).
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::seconds timeout = std::chrono::seconds(120));

}  // namespace retrain::testing
