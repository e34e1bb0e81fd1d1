#include "worker/ordered_parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace retrain::worker {
namespace {

TEST(RunOrderedTest, ConsumesEveryResultInOrder) {
  std::vector<size_t> seen;
  size_t n = RunOrdered<size_t>(
      1000, 4, 8,
      [](size_t i) {
        if (i % 7 == 0) std::this_thread::yield();
        return i * i;
      },
      [&](size_t i, size_t&& v) {
        EXPECT_EQ(v, i * i);
        seen.push_back(i);
        return true;
      });
  EXPECT_EQ(n, 1000u);
  ASSERT_EQ(seen.size(), 1000u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
}

TEST(RunOrderedTest, StopsEarlyAndBoundsWorkAhead) {
  std::atomic<size_t> produced{0};
  size_t n = RunOrdered<int>(
      1000, 3, 6,
      [&](size_t) {
        ++produced;
        return 0;
      },
      [](size_t i, int&&) { return i < 9; });
  EXPECT_EQ(n, 10u);
  EXPECT_LE(produced.load(), 10u + 6u);
}

TEST(RunOrderedTest, NothingToDo) {
  EXPECT_EQ(RunOrdered<int>(0, 2, 4, [](size_t) { return 1; }, [](size_t, int&&) { return true; }),
            0u);
}

}  // namespace
}  // namespace retrain::worker
