// The channel to the coordinator that clients and workers use, given as one
// HOST:PORT or several, comma-separated (--server, RETRAIN_SERVER). With
// several, gRPC sends each call to the one that leads: the channel watches
// each coordinator's health service, where the leader says SERVING and
// standbys NOT_SERVING, and follows the leader when it changes. While none
// leads (a failover), calls fail with UNAVAILABLE, or wait for one when
// the call is wait_for_ready.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace retrain {

// The HOST:PORT entries of `servers`; INVALID_ARGUMENT naming `flag` when
// one is empty or has no port.
absl::StatusOr<std::vector<std::string>> SplitServers(const std::string& flag,
                                                      const std::string& servers);

// A channel to `servers` (see above) with `args`; several names are
// resolved once, here, to their addresses (all IPv4 or all IPv6). Over
// TLS with several, each coordinator's certificate must name the first
// host.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CoordinatorChannel(
    const std::string& flag, const std::string& servers,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials, grpc::ChannelArguments args);

}  // namespace retrain
