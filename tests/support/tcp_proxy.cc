#include "tests/support/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace retrain::testing {

namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

}  // namespace

TcpProxy::TcpProxy(int target_port) : target_port_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 64) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("TcpProxy: cannot listen on loopback");
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

TcpProxy::~TcpProxy() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  // Threads may start more threads until they see closing_ under mu_.
  while (true) {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : fds_) shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    healed_.notify_all();
    if (threads.empty()) break;
    for (auto& t : threads) t.join();
  }
  for (int fd : fds_) close(fd);
  close(listen_fd_);
}

void TcpProxy::Cut() {
  std::lock_guard<std::mutex> lock(mu_);
  cut_ = true;
}

void TcpProxy::Heal() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cut_ = false;
  }
  healed_.notify_all();
}

void TcpProxy::WaitWhileCut() {
  std::unique_lock<std::mutex> lock(mu_);
  healed_.wait(lock, [this] { return !cut_ || closing_; });
}

void TcpProxy::AcceptLoop() {
  while (!closing_) {
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (closing_) return;
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(client);
    // A connection made while cut waits, unanswered, for the link to heal.
    threads_.emplace_back([this, client] {
      WaitWhileCut();
      const int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr = Loopback(target_port_);
      if (closing_ || server < 0 ||
          connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (server >= 0) close(server);
        shutdown(client, SHUT_RDWR);
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_) {
        close(server);
        return;
      }
      fds_.push_back(server);
      threads_.emplace_back([this, client, server] { Pump(client, server); });
      threads_.emplace_back([this, client, server] { Pump(server, client); });
    });
  }
}

void TcpProxy::Pump(int from, int to) {
  char buf[16384];
  while (!closing_) {
    const ssize_t n = recv(from, buf, sizeof buf, 0);
    if (n <= 0) break;
    // Bytes read while cut are held here; more wait in the kernel's buffers.
    WaitWhileCut();
    ssize_t off = 0;
    while (off < n) {
      // MSG_NOSIGNAL: a peer that went away is an error here, not SIGPIPE.
      const ssize_t w = send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
      if (w <= 0) {
        shutdown(from, SHUT_RDWR);
        return;
      }
      off += w;
    }
  }
  shutdown(to, SHUT_WR);
}

}  // namespace retrain::testing
