#include "common/coordinator_channel.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace retrain {

namespace {

// Calls go to a coordinator whose health service ("") says SERVING.
constexpr const char* kFollowTheLeader =
    R"({"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}})";

struct HostPort {
  std::string host;
  std::string port;
};

HostPort Split(const std::string& address) {
  const size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return {host, address.substr(colon + 1)};
}

// "1.2.3.4:5" or "[::1]:5", and whether it is IPv6.
absl::StatusOr<std::pair<std::string, bool>> Resolve(const std::string& flag,
                                                     const std::string& address) {
  const HostPort hp = Split(address);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat(flag, ": cannot resolve ", hp.host, ": ", gai_strerror(rc)));
  }
  char ip[INET6_ADDRSTRLEN] = {};
  const bool v6 = found->ai_family == AF_INET6;
  const void* where =
      v6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(found->ai_addr)->sin6_addr)
         : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr);
  inet_ntop(found->ai_family, where, ip, sizeof ip);
  freeaddrinfo(found);
  return std::make_pair(v6 ? absl::StrCat("[", ip, "]:", hp.port) : absl::StrCat(ip, ":", hp.port),
                        v6);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> SplitServers(const std::string& flag,
                                                      const std::string& servers) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(servers, ',')) {
    const std::string address(absl::StripAsciiWhitespace(part));
    const size_t colon = address.rfind(':');
    if (address.empty() || colon == std::string::npos || colon == 0 ||
        colon + 1 == address.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": '", servers, "' is not HOST:PORT or a comma-separated list of them"));
    }
    out.push_back(address);
  }
  return out;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CoordinatorChannel(
    const std::string& flag, const std::string& servers,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials, grpc::ChannelArguments args) {
  ASSIGN_OR_RETURN(std::vector<std::string> addresses, SplitServers(flag, servers));
  if (addresses.size() == 1) return grpc::CreateCustomChannel(addresses[0], credentials, args);
  std::vector<std::string> resolved;
  int v6 = 0;
  for (const auto& address : addresses) {
    ASSIGN_OR_RETURN(auto r, Resolve(flag, address));
    resolved.push_back(r.first);
    v6 += r.second ? 1 : 0;
  }
  if (v6 != 0 && v6 != static_cast<int>(resolved.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": '", servers, "' mixes IPv4 and IPv6 coordinators; give addresses of one kind"));
  }
  args.SetServiceConfigJSON(kFollowTheLeader);
  // TLS checks the certificate against the first host's name.
  args.SetSslTargetNameOverride(Split(addresses[0]).host);
  const std::string target = absl::StrCat(v6 ? "ipv6:" : "ipv4:", absl::StrJoin(resolved, ","));
  return grpc::CreateCustomChannel(target, credentials, args);
}

}  // namespace retrain
