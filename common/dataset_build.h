// Facts about dataset builds that the coordinator's planning and the
// workers' build tasks share: the splits they walk, and what a task holds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataset/layout.h"
#include "retrain/v1/dataset.pb.h"
#include "retrain/v1/worker.pb.h"

namespace retrain {

// The format of the shards `spec` builds (DatasetBuildSpec.format, which
// the coordinator fills in and checks).
inline dataset::ShardFormat ShardFormatOf(const v1::DatasetBuildSpec& spec) {
  dataset::ShardFormat format = dataset::ShardFormat::kTfRecord;
  dataset::ParseShardFormat(spec.format(), &format);
  return format;
}

struct BuildSplit {
  std::string name;       // "train" or "validation", the prefix of its shards' names
  std::string directory;  // <label>/<image files> below it
  int shards = 0;
  dataset::ShardFormat format = dataset::ShardFormat::kTfRecord;

  // The file of shard `index`.
  std::string ShardFile(int index) const {
    return dataset::ShardFileName(name, index, shards, format);
  }
};

// The splits `spec` gives a directory for, train first.
inline std::vector<BuildSplit> BuildSplits(const v1::DatasetBuildSpec& spec) {
  std::vector<BuildSplit> splits;
  if (!spec.train_directory().empty()) {
    splits.push_back({"train", spec.train_directory(), spec.train_shards(), ShardFormatOf(spec)});
  }
  if (!spec.validation_directory().empty()) {
    splits.push_back(
        {"validation", spec.validation_directory(), spec.validation_shards(), ShardFormatOf(spec)});
  }
  return splits;
}

// The part of `result` that describes split `name`.
inline v1::SplitResult* SplitResultOf(const std::string& name, v1::DatasetBuildResult* result) {
  return name == "train" ? result->mutable_train() : result->mutable_validation();
}

}  // namespace retrain
