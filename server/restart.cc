#include "server/restart.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "common/logging.h"

namespace retrain::server {

namespace {

char** saved_argv = nullptr;

// Every open descriptor above stderr, listed before any is closed.
std::vector<int> DescriptorsAboveStderr() {
  std::vector<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  const int own = dirfd(dir);
  while (const dirent* entry = readdir(dir)) {
    const int fd = std::atoi(entry->d_name);
    if (fd > 2 && fd != own) fds.push_back(fd);
  }
  closedir(dir);
  return fds;
}

}  // namespace

void RememberArguments(char** argv) { saved_argv = argv; }

void RestartAsStandby(const std::string& why) {
  auto log = Logger("server");
  log->critical("no longer leading: {}; starting again as a standby", why);
  log->flush();
  const std::vector<int> fds = DescriptorsAboveStderr();
  // Connections end first, as a peer sees a crash end them: a client's call
  // fails UNAVAILABLE, which it retries, and gRPC, losing its poller below,
  // has no socket left to send its calls' cancellation on.
  for (int fd : fds) {
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) shutdown(fd, SHUT_RDWR);
  }
  for (int fd : fds) close(fd);
  if (saved_argv != nullptr) execv("/proc/self/exe", saved_argv);
  _exit(1);
}

}  // namespace retrain::server
