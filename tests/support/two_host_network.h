// Two hosts on one machine, for tests of what crosses a network: two
// network namespaces joined by a veth pair, each with its own address and
// loopback, and nothing else (no route out of them). No dependencies beyond
// process.h.
#pragma once

#include <string>
#include <vector>

namespace retrain::testing {

// Made by the constructor, removed (with their link) by the destructor.
// Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2's `ip`; where
// either is missing ok() is false and error() says what failed.
class TwoHostNetwork {
 public:
  TwoHostNetwork();
  ~TwoHostNetwork();
  TwoHostNetwork(const TwoHostNetwork&) = delete;
  TwoHostNetwork& operator=(const TwoHostNetwork&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // Host 0 or 1's IPv4 address, as the other host reaches it.
  const std::string& address(int host) const { return addresses_[host]; }
  // `argv` run on host 0 or 1 (`ip netns exec NAME argv...`; argv[0] a path).
  std::vector<std::string> On(int host, const std::vector<std::string>& argv) const;

 private:
  std::string ip_;  // the `ip` binary
  std::string names_[2];
  std::string addresses_[2] = {"198.18.0.1", "198.18.0.2"};
  std::string error_;
};

}  // namespace retrain::testing
