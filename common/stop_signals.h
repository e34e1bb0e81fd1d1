// SIGINT and SIGTERM as a request to stop, for the service programs.
#pragma once

#include <functional>
#include <thread>

namespace retrain {

// Blocks SIGINT and SIGTERM in the calling thread and so in every thread it
// starts afterwards. Call it first in main(), before any library starts a
// thread: a thread started earlier would take the signal with its default
// action, which ends the process at once, or, as a container's PID 1, is
// dropped, so that the process never stops.
void BlockStopSignals();

// Starts a thread that waits for SIGINT or SIGTERM, as blocked by
// BlockStopSignals(), and then calls `on_signal` with it, once.
std::thread WatchStopSignals(std::function<void(int)> on_signal);

}  // namespace retrain
