// One coordinator process's part in leadership over a shared PostgreSQL
// database (leader_lease.h): it stands by until it wins the lease, then
// renews it, and says when it can no longer trust it, so that the process
// stops acting before the lease can end. Standby coordinators poll for the
// lease; a leader that stops renewing (killed, paused, cut off) is replaced
// within lease_ms + poll_ms.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/leader_lease.h"

namespace retrain::server {

struct LeadershipOptions {
  int lease_ms = 10000;
  // How often a standby asks for the lease.
  int poll_ms = 500;
};

class Leadership {
 public:
  Leadership(std::unique_ptr<LeaderLease> lease, LeadershipOptions options);
  ~Leadership();  // stops renewing (without resigning)
  Leadership(const Leadership&) = delete;
  Leadership& operator=(const Leadership&) = delete;

  // Asks for the lease every poll_ms until this process holds it or `stop`
  // returns true; returns the epoch (0 when stopped). While the database
  // cannot be reached it goes on asking; errors only when no retry can help
  // (a wrong password, a newer schema).
  absl::StatusOr<int64_t> WaitToLead(const std::function<bool()>& stop);
  // What a standby tells callers: "this coordinator is standing by; the
  // leader is HOST:PORT (epoch N)". Thread-safe.
  std::string StandbyMessage() const;

  // Renews every lease_ms / 4 on a thread of its own. Calls `lost` once,
  // from a thread of its own, when a renewal is refused (another leads) or
  // when three quarters of the lease have passed since the last renewal
  // was sent, however long a renewal in flight takes to fail.
  void KeepRenewing(std::function<void(const std::string& why)> lost);
  // Stops renewing and ends the lease now, so that a standby takes over at
  // once (a clean shutdown).
  void Resign();

 private:
  void RenewLoop();
  void WatchLoop();
  // Calls lost_ the first time only.
  void Lose(const std::string& why);
  void StopRenewing();
  // Waits `d` or until stopping; true when stopping.
  bool Sleep(std::chrono::milliseconds d);

  std::unique_ptr<LeaderLease> lease_;
  const LeadershipOptions options_;
  int64_t epoch_ = 0;
  // When the request that last extended the lease was sent
  // (steady_clock, ns since its epoch).
  std::atomic<int64_t> renewed_at_ns_{0};
  std::function<void(const std::string&)> lost_;
  std::atomic<bool> lost_called_{false};
  mutable std::mutex mu_;
  std::string leader_;  // guarded by mu_: the last holder seen
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  std::thread renewer_;
  std::thread watchdog_;
};

}  // namespace retrain::server
