#include "tests/integration/dataset_check.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/hashing.h"
#include "common/tfrecord.h"
#include "tensorflow/core/example/example.pb.h"

namespace retrain::testing {

DatasetView ReadDataset(const std::string& dir) {
  DatasetView view;
  auto manifest = ReadFile(dir + "/dataset.json");
  if (!manifest.ok()) {
    ADD_FAILURE() << manifest.status();
    return view;
  }
  view.manifest = nlohmann::json::parse(*manifest);
  for (const auto& [split, info] : view.manifest["splits"].items()) {
    for (const auto& shard : info["shards"]) {
      const std::string file = shard["file"];
      const std::string path = dir + "/" + file;
      auto bytes = ReadFile(path);
      if (!bytes.ok()) {
        ADD_FAILURE() << bytes.status();
        continue;
      }
      EXPECT_EQ(static_cast<int64_t>(bytes->size()), shard["num_bytes"].get<int64_t>()) << file;
      Sha256 sha;
      sha.Update(*bytes);
      EXPECT_EQ(sha.HexDigest(), shard["sha256"].get<std::string>()) << file;
      view.shard_bytes[file] = *bytes;
      auto index = ReadFile(dir + "/index/" + file + ".idx");
      if (!index.ok()) {
        ADD_FAILURE() << index.status();
        continue;
      }
      view.index_bytes[file] = *index;
      std::vector<std::pair<int64_t, int64_t>> entries;
      for (absl::string_view line : absl::StrSplit(*index, '\n', absl::SkipEmpty())) {
        std::vector<std::string> parts = absl::StrSplit(line, ' ');
        EXPECT_EQ(parts.size(), 2u) << "index line '" << line << "' of " << file;
        if (parts.size() == 2) entries.emplace_back(std::stoll(parts[0]), std::stoll(parts[1]));
      }
      TfRecordReader reader;
      EXPECT_TRUE(reader.Open(path)) << reader.error();
      std::string record;
      size_t n = 0;
      while (true) {
        const int64_t offset = reader.offset();
        const auto result = reader.Next(&record);
        if (result == TfRecordReader::Result::kEnd) break;
        if (result != TfRecordReader::Result::kRecord) {
          ADD_FAILURE() << reader.error();
          break;
        }
        if (n < entries.size()) {
          EXPECT_EQ(entries[n].first, offset) << file << " record " << n;
          EXPECT_EQ(entries[n].second, static_cast<int64_t>(record.size()) + kTfRecordOverhead);
        }
        ++n;
        tensorflow::Example example;
        EXPECT_TRUE(example.ParseFromString(record));
        RecordView r;
        r.shard = file;
        for (const auto& [key, feature] : example.features().feature()) {
          r.keys.push_back(key);
          if (feature.has_bytes_list() && feature.bytes_list().value_size() == 1) {
            r.bytes[key] = feature.bytes_list().value(0);
          } else if (feature.has_int64_list() && feature.int64_list().value_size() == 1) {
            r.ints[key] = feature.int64_list().value(0);
          } else {
            ADD_FAILURE() << "feature " << key << " is not a single value";
          }
        }
        std::sort(r.keys.begin(), r.keys.end());
        view.records.push_back(std::move(r));
      }
      EXPECT_EQ(n, entries.size()) << "index of " << file << " lists another number of records";
      EXPECT_EQ(static_cast<int64_t>(n), shard["num_records"].get<int64_t>()) << file;
    }
  }
  return view;
}

}  // namespace retrain::testing
