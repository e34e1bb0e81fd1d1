#include "worker/build/shard_plan.h"

namespace retrain::worker {

namespace v1 = retrain::v1;

std::vector<v1::ShardTask> MakeShardTasks(std::vector<v1::ShardEntry> entries,
                                          const ShardPlanOptions& options) {
  // Each split is shuffled on its own stream so that adding validation
  // files does not reorder the training shards.
  SeededShuffle(entries, options.seed ^ (options.split == "train" ? 0 : 0x5bd1e995ull));
  std::vector<v1::ShardTask> shards(options.num_shards);
  const size_t n = entries.size();
  for (int s = 0; s < options.num_shards; ++s) {
    auto& shard = shards[s];
    shard.set_split(options.split);
    shard.set_file_name(ShardFileName(options.split, s, options.num_shards, options.format));
    shard.set_format(dataset::ShardFormatName(options.format));
    const size_t begin = n * s / options.num_shards;
    const size_t end = n * (s + 1) / options.num_shards;
    for (size_t i = begin; i < end; ++i) *shard.add_entries() = std::move(entries[i]);
  }
  return shards;
}

}  // namespace retrain::worker
