#include "dataset/layout.h"

#include <cstdio>

namespace retrain::dataset {

std::string ShardFileName(const std::string& split, int index, int count) {
  char numbers[48];
  std::snprintf(numbers, sizeof(numbers), "-%05d-of-%05d", index, count);
  return split + numbers;
}

std::string IndexFileFor(const std::string& shard_file) {
  return std::string(kIndexDirectory) + "/" + shard_file + ".idx";
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

}  // namespace retrain::dataset
