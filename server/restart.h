// How a coordinator that stops leading goes back to standing by: it runs
// its own binary again with the same arguments (execv), so that nothing of
// the old leader's memory, threads or pending replies survives, and the
// new process stands by for the lease like any other.
#pragma once

#include <string>

namespace retrain::server {

// Keeps argv for RestartAsStandby; call first thing in main().
void RememberArguments(char** argv);

// Logs `why`, closes every descriptor but stdin/out/err (the listening
// sockets among them) and execs the binary again; never returns.
[[noreturn]] void RestartAsStandby(const std::string& why);

}  // namespace retrain::server
