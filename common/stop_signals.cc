#include "common/stop_signals.h"

#include <signal.h>

#include <utility>

namespace retrain {

namespace {

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void BlockStopSignals() {
  const sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::thread WatchStopSignals(std::function<void(int)> on_signal) {
  return std::thread([on_signal = std::move(on_signal)] {
    const sigset_t set = StopSignals();
    int sig = 0;
    sigwait(&set, &sig);
    on_signal(sig);
  });
}

}  // namespace retrain
