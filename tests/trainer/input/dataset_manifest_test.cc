#include "trainer/input/dataset_manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "tests/trainer/input/test_dataset.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

using ::testing::HasSubstr;
using testing::ReadFile;
using testing::WriteFile;

testing::DatasetSpec TwoSplits() {
  testing::DatasetSpec spec;
  spec.splits = {{"train", 10, 3}, {"validation", 4, 2}};
  return spec;
}

// Runs `f`, expects a TrainerError(kData) whose message contains every one
// of `parts`.
template <typename F>
void ExpectDataError(F f, std::initializer_list<std::string> parts) {
  try {
    f();
    FAIL() << "no error";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kData) << e.what();
    for (const auto& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
  }
}

TEST(DatasetManifestTest, LoadsWhatBuildDatasetWrites) {
  const std::string dir = testing::MakeTempDir("manifest");
  testing::WriteDataset(dir, TwoSplits());
  const DatasetManifest m = LoadDatasetManifest(dir);
  EXPECT_EQ(m.format, "retrain-dataset/1");
  EXPECT_EQ(m.num_classes, 4);  // 3 labels + background
  EXPECT_TRUE(m.background_class);
  ASSERT_EQ(m.labels.size(), 3u);
  EXPECT_EQ(m.labels[0].id, 1);
  EXPECT_EQ(m.labels[2].name, "class3");
  ASSERT_TRUE(m.has_split("train"));
  ASSERT_TRUE(m.has_split("validation"));
  const SplitInfo& train = m.split("train");
  EXPECT_EQ(train.num_records, 10);
  ASSERT_EQ(train.shards.size(), 3u);
  EXPECT_EQ(train.shards[0].file, "train-00000-of-00003");
  EXPECT_EQ(train.shards[0].path, dir + "/train-00000-of-00003");
  EXPECT_EQ(train.shards[0].index_path, dir + "/index/train-00000-of-00003.idx");
  EXPECT_EQ(train.shards[0].num_records, 4);
  EXPECT_EQ(train.shards[2].num_records, 3);
  int64_t bytes = 0;
  for (const auto& s : train.shards) bytes += static_cast<int64_t>(ReadFile(s.path).size());
  EXPECT_EQ(train.num_bytes(), bytes);
  EXPECT_DOUBLE_EQ(m.mean_record_bytes("train"), static_cast<double>(bytes) / 10.0);
  EXPECT_EQ(m.split("validation").shards.size(), 2u);
}

TEST(DatasetManifestTest, MissingDirectoryOrManifestSaysWhatToDo) {
  ExpectDataError([] { LoadDatasetManifest("/nonexistent/retrain-data"); },
                  {"/nonexistent/retrain-data", "does not exist", "build-dataset"});
  const std::string dir = testing::MakeTempDir("empty");
  ExpectDataError([&] { LoadDatasetManifest(dir); },
                  {dir + "/dataset.json", "run retrain build-dataset first"});
}

TEST(DatasetManifestTest, CorruptManifestNamesFileAndField) {
  const std::string dir = testing::MakeTempDir("corrupt");
  testing::WriteDataset(dir, TwoSplits());
  WriteFile(dir + "/dataset.json", "{\"format\": \"retrain-dataset/1\", ");
  ExpectDataError([&] { LoadDatasetManifest(dir); },
                  {dir + "/dataset.json", "corrupt", "not valid JSON", "build-dataset"});

  testing::WriteDataset(dir, TwoSplits());
  auto j = nlohmann::json::parse(ReadFile(dir + "/dataset.json"));
  j["splits"]["train"]["num_records"] = 11;
  WriteFile(dir + "/dataset.json", j.dump());
  ExpectDataError([&] { LoadDatasetManifest(dir); },
                  {"splits.train.num_records is 11 but its shards hold 10"});

  j = nlohmann::json::parse(ReadFile(dir + "/dataset.json"));
  j["splits"]["train"]["num_records"] = 10;
  j.erase("num_classes");
  WriteFile(dir + "/dataset.json", j.dump());
  ExpectDataError([&] { LoadDatasetManifest(dir); }, {"has no \"num_classes\""});

  j = nlohmann::json::parse(ReadFile(dir + "/dataset.json"));
  j["num_classes"] = 4;
  j["splits"]["train"]["shards"][0]["file"] = "../etc/passwd";
  WriteFile(dir + "/dataset.json", j.dump());
  ExpectDataError([&] { LoadDatasetManifest(dir); }, {"is not a file name"});

  j["splits"]["train"]["shards"][0]["file"] = "train-00000-of-00003";
  j["format"] = "retrain-dataset/3";
  WriteFile(dir + "/dataset.json", j.dump());
  ExpectDataError([&] { LoadDatasetManifest(dir); }, {"retrain-dataset/3", "newer"});
}

TEST(DatasetManifestTest, MissingOrChangedShardAndMissingIndex) {
  const std::string dir = testing::MakeTempDir("shards");
  testing::WriteDataset(dir, TwoSplits());
  const std::string shard = dir + "/train-00001-of-00003";
  const std::string data = ReadFile(shard);

  ::unlink(shard.c_str());
  ExpectDataError([&] { LoadDatasetManifest(dir); }, {shard, "is missing", "build-dataset"});

  WriteFile(shard, data.substr(0, data.size() - 5));
  ExpectDataError([&] { LoadDatasetManifest(dir); },
                  {shard, std::to_string(data.size() - 5) + " bytes", "changed"});

  WriteFile(shard, data);
  const std::string index = dir + "/index/validation-00001-of-00002.idx";
  ::unlink(index.c_str());
  ExpectDataError([&] { LoadDatasetManifest(dir); }, {index, "is missing", "build-dataset"});
}

TEST(DatasetManifestTest, MissingSplitIsADataError) {
  const std::string dir = testing::MakeTempDir("onesplit");
  testing::DatasetSpec spec;
  spec.splits = {{"train", 3, 1}};
  testing::WriteDataset(dir, spec);
  const DatasetManifest m = LoadDatasetManifest(dir);
  EXPECT_FALSE(m.has_split("validation"));
  ExpectDataError([&] { m.split("validation"); },
                  {"no validation split", "--validation_directory"});
}

}  // namespace
}  // namespace retrain::trainer
