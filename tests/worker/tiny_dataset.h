// A finished dataset in miniature, as a build leaves it: dataset.json over
// one-record train shards of two classes (cat, dog), with the shard and
// index files it names. For tests of what reads a dataset without its
// records (checks, the engine's phases).
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "retrain/v1/job.pb.h"
#include "worker/build/dataset_manifest.h"

namespace retrain::testing {

// Writes `content` at `path`, making its directories.
inline void WriteFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// The dataset in `dir`, over `shards` shards.
inline void WriteTinyDataset(const std::string& dir, int shards) {
  retrain::v1::Job job;
  job.set_id("j-000001");
  job.mutable_dataset_build()->set_train_directory("/in/train");
  job.mutable_dataset_build()->set_background_class(true);
  retrain::v1::DatasetBuildResult result;
  for (const char* name : {"cat", "dog"}) {
    auto* label = result.add_labels();
    label->set_id(result.labels_size());
    label->set_name(name);
  }
  auto* train = result.mutable_train();
  for (int i = 0; i < shards; ++i) {
    const std::string file = "train-0000" + std::to_string(i) + "-of-0000" + std::to_string(shards);
    const std::string bytes(4096, 'x');
    WriteFile(dir + "/" + file, bytes);
    WriteFile(dir + "/index/" + file + ".idx", "0 4096\n");
    auto* shard = train->add_shards();
    shard->set_file(file);
    shard->set_num_records(1);
    shard->set_num_bytes(static_cast<int64_t>(bytes.size()));
    shard->set_sha256(std::string(64, '0'));
  }
  train->set_num_records(shards);
  WriteFile(dir + "/dataset.json", retrain::worker::DatasetManifestJson(job, result));
}

}  // namespace retrain::testing
