// Runs work items on a few threads and hands their results back in order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace retrain::worker {

// Computes produce(i) for i in [0, n) on `threads` threads and calls
// consume(i, result) on the calling thread in index order. At most `window`
// results wait ahead of the consumer, which bounds memory. consume returning
// false stops the run early (items already started finish, the rest are
// skipped). Returns the number of items consumed.
template <typename R>
size_t RunOrdered(size_t n, int threads, size_t window, const std::function<R(size_t)>& produce,
                  const std::function<bool(size_t, R&&)>& consume) {
  if (threads < 1) threads = 1;
  if (window < static_cast<size_t>(threads)) window = threads;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::optional<R>> slots(n);
  size_t next = 0;      // guarded by mu: next index to hand out
  size_t consumed = 0;  // guarded by mu: items consumed so far
  bool stop = false;    // guarded by mu

  auto work = [&] {
    while (true) {
      size_t i;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || next >= n || next < consumed + window; });
        if (stop || next >= n) return;
        i = next++;
      }
      R r = produce(i);
      {
        std::lock_guard<std::mutex> lock(mu);
        slots[i] = std::move(r);
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  size_t done = 0;
  for (size_t i = 0; i < n; ++i) {
    std::optional<R> r;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return slots[i].has_value(); });
      r = std::move(slots[i]);
      slots[i].reset();
    }
    const bool go_on = consume(i, std::move(*r));
    {
      std::lock_guard<std::mutex> lock(mu);
      consumed = i + 1;
      if (!go_on) stop = true;
    }
    cv.notify_all();
    ++done;
    if (!go_on) break;
  }
  for (auto& t : pool) t.join();
  return done;
}

}  // namespace retrain::worker
