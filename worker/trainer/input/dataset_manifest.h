// The dataset a `retrain build-dataset` run left in a directory, as the
// trainer sees it: dataset.json (written by server/dataset_manifest.cc) with
// its shards checked to be there.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace retrain::trainer {

struct ShardInfo {
  std::string file;        // base name as in the manifest, e.g. "train-00000-of-00128"
  std::string path;        // <data_dir>/<file>
  std::string index_path;  // <data_dir>/<index>, e.g. <data_dir>/index/train-00000-of-00128.idx
  int64_t num_records = 0;
  int64_t num_bytes = 0;  // size of the shard file: records with their TFRecord framing
};

struct SplitInfo {
  std::string name;  // "train" or "validation"
  int64_t num_records = 0;
  std::vector<ShardInfo> shards;

  int64_t num_bytes() const;
  // Mean framed record size in bytes (shard bytes / records); 0 when empty.
  double mean_record_bytes() const;
};

struct LabelInfo {
  int64_t id = 0;
  std::string name;
};

struct DatasetManifest {
  std::string data_dir;
  std::string format;            // "retrain-dataset/1"
  int num_classes = 0;           // logits the model needs: labels + 1 when background_class
  bool background_class = true;  // label 0 is the (empty) background class
  std::vector<LabelInfo> labels;
  std::map<std::string, SplitInfo> splits;  // "train" and/or "validation"

  bool has_split(const std::string& name) const { return splits.count(name) != 0; }
  // Throws TrainerError(kData) naming the split and the directory when the
  // dataset has no such split (built without that directory).
  const SplitInfo& split(const std::string& name) const;
  double mean_record_bytes(const std::string& split_name) const {
    return split(split_name).mean_record_bytes();
  }
};

// Parses `json_text` as the dataset.json of `data_dir`. Checks its structure
// (types, counts that add up, shard names without path separators) but not
// the files. Throws TrainerError(kData).
DatasetManifest ParseDatasetManifest(const std::string& json_text, const std::string& data_dir);

// Reads <data_dir>/dataset.json and checks that every shard and index file
// it lists exists, and that each shard has the size the manifest records.
// Every failure (no manifest, unreadable or corrupt JSON, a missing or
// changed shard, a missing index) is a TrainerError(kData) that names the
// file and says what to do, e.g. "run retrain build-dataset first".
DatasetManifest LoadDatasetManifest(const std::string& data_dir);

}  // namespace retrain::trainer
