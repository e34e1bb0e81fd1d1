// The dataset a `retrain build-dataset` run left in a directory, as the
// trainer sees it: the contract's manifest (dataset/manifest.h), with its
// shards checked to be there, and failures as TrainerError(kData).
#pragma once

#include <string>

#include "dataset/manifest.h"

namespace retrain::trainer {

using dataset::LabelInfo;
using dataset::ShardInfo;
using dataset::SplitInfo;

struct DatasetManifest : dataset::Manifest {
  // Throws TrainerError(kData) naming the split and the directory when the
  // dataset has no such split (built without that directory).
  const SplitInfo& split(const std::string& name) const;
  double mean_record_bytes(const std::string& split_name) const {
    return split(split_name).mean_record_bytes();
  }
};

// dataset::ParseManifest; throws TrainerError(kData) with its error.
DatasetManifest ParseDatasetManifest(const std::string& json_text, const std::string& data_dir);

// dataset::LoadManifest (every shard and index file there, each shard of the
// size recorded); throws TrainerError(kData) with its error, which names the
// file and says what to do, e.g. "run retrain build-dataset first".
DatasetManifest LoadDatasetManifest(const std::string& data_dir);

}  // namespace retrain::trainer
