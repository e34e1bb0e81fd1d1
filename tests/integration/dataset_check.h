// Reading a finished dataset back for assertions: every record of every
// shard, checked against the index files and the manifest.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace retrain::testing {

struct RecordView {
  std::string shard;
  std::map<std::string, std::string> bytes;    // bytes features
  std::map<std::string, int64_t> ints;         // int64 features
  std::vector<std::string> keys;               // all feature keys, sorted
};

struct DatasetView {
  nlohmann::json manifest;
  std::vector<RecordView> records;  // shard order, then record order
  std::map<std::string, std::string> shard_bytes;  // file -> contents
  std::map<std::string, std::string> index_bytes;  // file -> .idx contents
};

// Reads `<dir>/dataset.json`, every shard it lists and its index; fails the
// current test (ADD_FAILURE) on any framing, CRC, index or checksum error.
DatasetView ReadDataset(const std::string& dir);

}  // namespace retrain::testing
