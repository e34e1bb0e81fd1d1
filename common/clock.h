// Where the coordinator and the worker agent read the time, so that tests
// can move it by hand (leveldb's Env, for time only).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace retrain {

// Thread-safe: NowMs() may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in milliseconds since the Unix epoch: what job records,
  // leases and heartbeats are stamped with.
  virtual int64_t NowMs() const = 0;
  // The process-wide system clock.
  static Clock* Real();
};

// A clock that stands still until Advance() or Set() moves it (tests).
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  void Advance(std::chrono::milliseconds by) { now_ms_ += by.count(); }
  void Set(int64_t now_ms) { now_ms_ = now_ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace retrain
