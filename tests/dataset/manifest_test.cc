#include "dataset/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "dataset/layout.h"
#include "tests/support/process.h"

namespace retrain::dataset {
namespace {

using ::testing::HasSubstr;

// A manifest with every field set to something other than its default.
Manifest FullManifest() {
  Manifest m;
  m.format = kFormat;
  m.job_id = "j-000042";
  m.created = "2026-12-05T19:00:00Z";
  m.num_classes = 3;
  m.background_class = true;
  m.labels = {{1, "cat"}, {2, "dog \xE2\x9C\x93"}};
  for (const char* name : {"train", "validation"}) {
    SplitInfo& split = m.splits[name];
    split.name = name;
    split.num_converted = 1;
    for (int i = 0; i < 2; ++i) {
      ShardInfo& shard = split.shards.emplace_back();
      shard.file = ShardFileName(name, i, 2, ShardFormat::kTfRecord);
      shard.index = IndexFileFor(shard.file);
      shard.num_records = 3 + i;
      shard.num_bytes = 1000 + i;
      shard.sha256 = std::string(63, 'a') + std::to_string(i);
      split.num_records += shard.num_records;
    }
    split.class_counts = {{1, "cat", 4}, {2, "dog \xE2\x9C\x93", 3}};
  }
  m.skipped = {{"cat/x.jpg", "train", "truncated", "Premature end of JPEG file"}};
  m.duplicates = {{"train/cat/a.jpg", "validation/cat/b.jpg"}};
  m.seed = 18446744073709551615ull;
  m.options = {"/d/train", "/d/validation", "/d/out", "/d/labels.txt", 2, 2,
               95,         100000000,       true,     "structure"};
  return m;
}

TEST(ManifestTest, WhatIsWrittenIsReadBackFieldForField) {
  const Manifest written = FullManifest();
  const std::string json = ManifestJson(written);
  Manifest read;
  std::string error;
  ASSERT_TRUE(ParseManifest(json, "/data/set", &read, &error)) << error;
  EXPECT_EQ(ManifestJson(read), json);
  EXPECT_EQ(read.data_dir, "/data/set");
  EXPECT_EQ(read.job_id, "j-000042");
  EXPECT_EQ(read.seed, 18446744073709551615ull);
  EXPECT_EQ(read.labels[1].name, "dog \xE2\x9C\x93");
  ASSERT_NE(read.FindSplit("validation"), nullptr);
  const ShardInfo& shard = read.FindSplit("validation")->shards[1];
  EXPECT_EQ(shard.file, "validation-00001-of-00002");
  EXPECT_EQ(shard.path, "/data/set/validation-00001-of-00002");
  EXPECT_EQ(shard.index_path, "/data/set/index/validation-00001-of-00002.idx");
  EXPECT_EQ(shard.sha256, std::string(63, 'a') + "1");
  EXPECT_EQ(read.FindSplit("train")->class_counts[0].count, 4);
  EXPECT_EQ(read.skipped[0].detail, "Premature end of JPEG file");
  EXPECT_EQ(read.duplicates[0][1], "validation/cat/b.jpg");
  EXPECT_EQ(read.options.max_pixels, 100000000);
  EXPECT_EQ(read.options.verify, "structure");
  EXPECT_EQ(read.FindSplit("test"), nullptr);
}

TEST(ManifestTest, TheWriterSortsKeysAndEndsWithANewline) {
  const std::string json = ManifestJson(FullManifest());
  EXPECT_EQ(json.back(), '\n');
  EXPECT_LT(json.find("\"background_class\""), json.find("\"created\""));
  EXPECT_LT(json.find("\"num_bytes\""), json.find("\"sha256\""));
  EXPECT_THAT(json, HasSubstr("\"index\": \"index/train-00000-of-00002.idx\""));
}

TEST(ManifestTest, ReadingNamesTheFileTheFieldAndTheFix) {
  std::string bad = ManifestJson(FullManifest());
  const std::string seven = "\"num_records\": 7";
  bad.replace(bad.find(seven), seven.size(), "\"num_records\": 8");
  Manifest m;
  std::string error;
  EXPECT_FALSE(ParseManifest(bad, "/d", &m, &error));
  EXPECT_THAT(error, HasSubstr("/d/dataset.json: corrupt dataset manifest: splits.train."
                               "num_records is 8 but its shards hold 7; rebuild the dataset"));
  EXPECT_FALSE(ParseManifest("[1, 2]", "/d", &m, &error));
  EXPECT_THAT(error, HasSubstr("not a JSON object"));
  EXPECT_FALSE(ParseManifest(R"({"format": "retrain-dataset/9"})", "/d", &m, &error));
  EXPECT_THAT(error, HasSubstr("\"retrain-dataset/9\" is newer than this reader reads"));
  std::string escape = ManifestJson(FullManifest());
  escape.replace(escape.find("\"index/train-00000"), 7, "\"../../");
  EXPECT_FALSE(ParseManifest(escape, "/d", &m, &error));
  EXPECT_THAT(error, HasSubstr("leaves the directory"));
}

TEST(ManifestTest, LoadingChecksThatEveryShardAndIndexIsThere) {
  retrain::testing::TempDir dir;
  Manifest m = FullManifest();
  m.splits.erase("validation");
  std::string error;
  Manifest loaded;
  EXPECT_FALSE(LoadManifest(dir.path(), &loaded, &error));
  EXPECT_THAT(error, HasSubstr("run retrain build-dataset first"));
  std::ofstream(JoinPath(dir.path(), kManifestFile)) << ManifestJson(m);
  EXPECT_FALSE(LoadManifest(dir.path(), &loaded, &error));
  EXPECT_THAT(error, HasSubstr("train-00000-of-00002 is missing"));
  std::filesystem::create_directories(JoinPath(dir.path(), kIndexDirectory));
  for (const ShardInfo& s : m.splits["train"].shards) {
    std::ofstream(JoinPath(dir.path(), s.file)) << std::string(s.num_bytes, 'x');
    std::ofstream(JoinPath(dir.path(), s.index)) << "";
  }
  EXPECT_TRUE(LoadManifest(dir.path(), &loaded, &error)) << error;
  EXPECT_TRUE(ReadManifest(dir.path(), &loaded, &error)) << error;
  std::ofstream(JoinPath(dir.path(), m.splits["train"].shards[1].file)) << "short";
  EXPECT_FALSE(LoadManifest(dir.path(), &loaded, &error));
  EXPECT_THAT(error, HasSubstr("the shard changed after the build"));
  EXPECT_TRUE(ReadManifest(dir.path(), &loaded, &error)) << "reading does not look at shards";
}

TEST(ManifestTest, AWebDatasetManifestSaysVersionTwoAndItsShardFormat) {
  Manifest written = FullManifest();
  written.shard_format = ShardFormat::kWebDataset;
  const std::string json = ManifestJson(written);
  EXPECT_THAT(json, HasSubstr("\"format\": \"retrain-dataset/2\""));
  EXPECT_THAT(json, HasSubstr("\"shard_format\": \"webdataset\""));
  Manifest read;
  std::string error;
  ASSERT_TRUE(ParseManifest(json, "/d", &read, &error)) << error;
  EXPECT_EQ(read.shard_format, ShardFormat::kWebDataset);
  EXPECT_EQ(ManifestJson(read), json);
  // A TFRecord dataset's manifest stays at version 1, which older readers read.
  EXPECT_THAT(ManifestJson(FullManifest()), HasSubstr("\"format\": \"retrain-dataset/1\""));
  // Written before WebDataset shards: no shard_format, TFRecord.
  std::string old = ManifestJson(FullManifest());
  const std::string line = "  \"shard_format\": \"tfrecord\",\n";
  old.erase(old.find(line), line.size());
  ASSERT_EQ(old.find("shard_format"), std::string::npos);
  ASSERT_TRUE(ParseManifest(old, "/d", &read, &error)) << error;
  EXPECT_EQ(read.shard_format, ShardFormat::kTfRecord);
  // The two must agree, and the format must be one of ours.
  std::string mixed = json;
  mixed.replace(mixed.find("retrain-dataset/2"), 17, "retrain-dataset/1");
  EXPECT_FALSE(ParseManifest(mixed, "/d", &read, &error));
  EXPECT_THAT(error, HasSubstr("shard_format \"webdataset\" does not go with format"));
  std::string unknown = json;
  unknown.replace(unknown.find("\"webdataset\""), 12, "\"parquet\"");
  EXPECT_FALSE(ParseManifest(unknown, "/d", &read, &error));
  EXPECT_THAT(error, HasSubstr("shard_format \"parquet\" is none of tfrecord, webdataset"));
}

TEST(LayoutTest, NamesAsTheReferenceWritesThem) {
  EXPECT_EQ(ShardFileName("train", 3, 128, ShardFormat::kTfRecord), "train-00003-of-00128");
  EXPECT_EQ(IndexFileFor("validation-00000-of-00024"), "index/validation-00000-of-00024.idx");
  EXPECT_EQ(ShardFileName("train", 3, 128, ShardFormat::kWebDataset), "train-000003.tar");
  EXPECT_EQ(IndexFileFor("train-000003.tar"), "index/train-000003.idx");
  ShardFormat format = ShardFormat::kTfRecord;
  ASSERT_TRUE(ParseShardFormat(ShardFormatName(ShardFormat::kWebDataset), &format));
  EXPECT_EQ(format, ShardFormat::kWebDataset);
  EXPECT_FALSE(ParseShardFormat("", &format));
  EXPECT_FALSE(ParseShardFormat("TFRecord", &format));
  EXPECT_EQ(JoinPath("/a/", "b"), "/a/b");
  EXPECT_EQ(JoinPath("/a", "b"), "/a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
}

TEST(LayoutTest, IndexLinesRoundTripAndRefuseWhatIsNotOne) {
  EXPECT_EQ(IndexLine({0, 4096}), "0 4096\n");
  IndexEntry e;
  ASSERT_TRUE(ParseIndexLine("123456789012 77", &e));
  EXPECT_EQ(e.offset, 123456789012);
  EXPECT_EQ(e.size, 77);
  ASSERT_TRUE(ParseIndexLine(" 8\t16 \r", &e)) << "blanks and a CR around the numbers";
  EXPECT_EQ(e.offset, 8);
  EXPECT_EQ(e.size, 16);
  const std::string line = IndexLine({42, 9});
  ASSERT_TRUE(ParseIndexLine(line.substr(0, line.size() - 1), &e));
  EXPECT_EQ(e.offset, 42);
  EXPECT_EQ(e.size, 9);
  for (const char* bad : {"", "12", "12 ", "12x34", "12 34 56", "-1 10", "1 -10", "a b",
                          "99999999999999999999 1", "1 2x"}) {
    e = {7, 7};
    EXPECT_FALSE(ParseIndexLine(bad, &e)) << '"' << bad << '"';
    EXPECT_EQ(e.offset, 7) << "untouched on failure";
  }
}

}  // namespace
}  // namespace retrain::dataset
