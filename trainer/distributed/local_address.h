// Which of this host's addresses the other hosts of a job reach it at.
// No LibTorch.
#pragma once

#include <string>

namespace retrain::trainer {

// The address this host's packets to `host` (an IP address or a name) leave
// from: the one to bind and tell the other ranks, since they reach this host
// over the same network as `host` (a loopback address for a loopback `host`). Unlike
// this host's name, which often resolves to a loopback address (Debian's
// /etc/hosts maps it to 127.0.1.1), it is reachable from the other hosts
// whenever `host` is. Sends nothing. Throws TrainerError(kConfig) naming
// `host` when it does not resolve or no route leads to it.
std::string LocalAddressToward(const std::string& host);

}  // namespace retrain::trainer
