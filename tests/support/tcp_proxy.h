// A TCP proxy on loopback that can cut the network between its clients and
// a server, as a switched-off link would: while cut, bytes in both
// directions and new connections are held, not refused or reset, so the
// clients see silence and their deadlines expire. Heal() lets everything
// flow again. Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace retrain::testing {

class TcpProxy {
 public:
  // Listens on a free loopback port and forwards to 127.0.0.1:target_port.
  explicit TcpProxy(int target_port);
  ~TcpProxy();  // closes every connection
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  void Cut();
  void Heal();

 private:
  void AcceptLoop();
  // Copies `from` to `to` until EOF or Close, holding bytes while cut.
  void Pump(int from, int to);
  void WaitWhileCut();

  const int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> closing_{false};
  std::mutex mu_;
  std::condition_variable healed_;
  bool cut_ = false;           // guarded by mu_
  std::vector<int> fds_;       // guarded by mu_: every open connection
  std::vector<std::thread> threads_;  // guarded by mu_
  std::thread acceptor_;
};

}  // namespace retrain::testing
