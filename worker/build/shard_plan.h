// Dealing a split's files into shards: shuffled with the build's
// seed, then cut into evenly sized runs. Everything here is a pure function
// of its inputs: the same files and seed give the same shards, byte for
// byte, on every platform and after any restart.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataset/layout.h"
#include "retrain/v1/worker.pb.h"

namespace retrain::worker {

// "train-00003-of-00128", "train-000003.tar" (the dataset's layout).
using dataset::ShardFileName;

// Shuffles `items` with a generator whose output depends only on `seed`
// (not on the standard library's distribution implementations).
template <typename T>
void SeededShuffle(std::vector<T>& items, uint64_t seed);

struct ShardPlanOptions {
  std::string split;
  int num_shards = 2;
  dataset::ShardFormat format = dataset::ShardFormat::kTfRecord;
  uint64_t seed = 12345;
};

// Shuffles `entries` (in scan order) with the seed and deals them into
// `num_shards` contiguous runs whose sizes differ by at most one: each
// task holds its split, file name, format and entries (the coordinator
// makes the tasks the workers run). Shards may be empty when there are
// fewer files than shards.
std::vector<retrain::v1::ShardTask> MakeShardTasks(std::vector<retrain::v1::ShardEntry> entries,
                                                   const ShardPlanOptions& options);

// --- implementation ---

// SplitMix64: tiny, well-mixed, and identical on every platform.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound) by rejection (no modulo bias).
  uint64_t Below(uint64_t bound) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t v;
    do v = Next(); while (v >= limit);
    return v % bound;
  }

 private:
  uint64_t state_;
};

template <typename T>
void SeededShuffle(std::vector<T>& items, uint64_t seed) {
  SplitMix64 rng(seed);
  for (size_t i = items.size(); i > 1; --i) {
    std::swap(items[i - 1], items[rng.Below(i)]);
  }
}

}  // namespace retrain::worker
