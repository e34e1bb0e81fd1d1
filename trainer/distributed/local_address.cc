#include "trainer/distributed/local_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "trainer/trainer_error.h"

namespace retrain::trainer {

namespace {

// The source address of a UDP socket connected to `to`: the kernel picks it
// from the route to `to` at connect(), which sends no packet. Empty, with
// `error` set, when there is no route.
std::string SourceAddressToward(const addrinfo& to, std::string& error) {
  const int fd = socket(to.ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::strerror(errno);
    return "";
  }
  sockaddr_storage local{};
  socklen_t length = sizeof local;
  const bool ok = connect(fd, to.ai_addr, to.ai_addrlen) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0;
  if (!ok) error = std::strerror(errno);
  close(fd);
  if (!ok) return "";
  char text[INET6_ADDRSTRLEN] = {};
  const void* address =
      local.ss_family == AF_INET6
          ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(&local)->sin6_addr)
          : static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(&local)->sin_addr);
  if (inet_ntop(local.ss_family, address, text, sizeof text) == nullptr) {
    error = std::strerror(errno);
    return "";
  }
  return text;
}

}  // namespace

std::string LocalAddressToward(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  // Any port: connect() on a UDP socket only needs one to pick the route.
  if (const int rc = getaddrinfo(host.c_str(), "9", &hints, &found); rc != 0) {
    throw TrainerError(TrainerError::Kind::kConfig, "--master_addr " + host +
                                                        " does not resolve (" + gai_strerror(rc) +
                                                        "); give rank 0's host name or address");
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(found, freeaddrinfo);
  std::string error = "no address";
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (std::string local = SourceAddressToward(*a, error); !local.empty()) return local;
  }
  throw TrainerError(TrainerError::Kind::kConfig,
                     "no route from this host to --master_addr " + host + " (" + error +
                         "); set GLOO_SOCKET_IFNAME to the network interface to use");
}

}  // namespace retrain::trainer
