#include "worker/build/shard_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>
#include <set>

namespace retrain::worker {
namespace {

namespace v1 = retrain::v1;

std::vector<v1::ShardEntry> Entries(int n) {
  std::vector<v1::ShardEntry> out(n);
  for (int i = 0; i < n; ++i) out[i].set_relative_path("f" + std::to_string(i));
  return out;
}

std::vector<std::string> Order(const std::vector<v1::ShardTask>& shards) {
  std::vector<std::string> out;
  for (const auto& s : shards) {
    for (const auto& e : s.entries()) out.push_back(e.relative_path());
  }
  return out;
}

TEST(BuildPlannerTest, ShardNamesFollowTheReference) {
  EXPECT_EQ(ShardFileName("train", 0, 128, dataset::ShardFormat::kTfRecord),
            "train-00000-of-00128");
  EXPECT_EQ(ShardFileName("validation", 23, 24, dataset::ShardFormat::kTfRecord),
            "validation-00023-of-00024");
}

TEST(BuildPlannerTest, SameSeedSameShardsOtherSeedOtherOrder) {
  ShardPlanOptions o;
  o.split = "train";
  o.num_shards = 7;
  auto a = MakeShardTasks(Entries(1000), o);
  auto b = MakeShardTasks(Entries(1000), o);
  EXPECT_EQ(Order(a), Order(b));
  o.seed = 1;
  EXPECT_NE(Order(MakeShardTasks(Entries(1000), o)), Order(a));
  // Shuffled, and still every file once.
  auto order = Order(a);
  std::vector<std::string> input;
  for (const auto& e : Entries(1000)) input.push_back(e.relative_path());
  EXPECT_NE(order, input);
  EXPECT_EQ(std::set<std::string>(order.begin(), order.end()).size(), 1000u);
}

TEST(BuildPlannerTest, ShardSizesDifferByAtMostOne) {
  for (int n : {0, 1, 5, 127, 1000, 1001}) {
    for (int shards : {1, 2, 7, 128}) {
      ShardPlanOptions o;
      o.num_shards = shards;
      auto tasks = MakeShardTasks(Entries(n), o);
      ASSERT_EQ(static_cast<int>(tasks.size()), shards);
      int lo = n, hi = 0, total = 0;
      for (const auto& t : tasks) {
        lo = std::min(lo, t.entries_size());
        hi = std::max(hi, t.entries_size());
        total += t.entries_size();
      }
      EXPECT_EQ(total, n);
      EXPECT_LE(hi - lo, 1) << n << " files in " << shards << " shards";
    }
  }
}

TEST(BuildPlannerTest, ShuffleIsAFixedFunctionOfTheSeed) {
  // Pinned so that a change of generator, which would silently change
  // every user's shards, fails here.
  std::vector<int> v(10);
  std::iota(v.begin(), v.end(), 0);
  SeededShuffle(v, 12345);
  std::vector<int> again(10);
  std::iota(again.begin(), again.end(), 0);
  SeededShuffle(again, 12345);
  EXPECT_EQ(v, again);
  SplitMix64 rng(0);
  EXPECT_EQ(rng.Next(), 0xe220a8397b1dcdafull);  // SplitMix64's published first output
}

}  // namespace
}  // namespace retrain::worker
