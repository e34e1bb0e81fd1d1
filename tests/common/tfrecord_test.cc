#include "common/tfrecord.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/crc32c.h"

namespace retrain {
namespace {

class TfRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tfrecord_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& bytes) {
    std::string path = (dir_ / "records").string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(TfRecordTest, FramingMatchesTheFormat) {
  std::string out;
  AppendTfRecord("abc", &out);
  ASSERT_EQ(out.size(), 3 + kTfRecordOverhead);
  EXPECT_EQ(out.substr(0, 8), std::string("\x03\0\0\0\0\0\0\0", 8));
  uint32_t len_crc = 0, data_crc = 0;
  for (int i = 3; i >= 0; --i) len_crc = (len_crc << 8) | static_cast<uint8_t>(out[8 + i]);
  for (int i = 3; i >= 0; --i) data_crc = (data_crc << 8) | static_cast<uint8_t>(out[15 + i]);
  EXPECT_EQ(len_crc, MaskCrc(Crc32c(std::string("\x03\0\0\0\0\0\0\0", 8))));
  EXPECT_EQ(out.substr(12, 3), "abc");
  EXPECT_EQ(data_crc, MaskCrc(Crc32c("abc")));
}

TEST_F(TfRecordTest, RoundTrip) {
  std::vector<std::string> records = {"", "x", std::string(100000, 'y'), "last"};
  std::string bytes;
  for (const auto& r : records) AppendTfRecord(r, &bytes);
  TfRecordReader reader;
  ASSERT_TRUE(reader.Open(Write(bytes)));
  std::string record;
  std::vector<int64_t> offsets;
  for (const auto& expected : records) {
    offsets.push_back(reader.offset());
    ASSERT_EQ(reader.Next(&record), TfRecordReader::Result::kRecord) << reader.error();
    EXPECT_EQ(record, expected);
  }
  EXPECT_EQ(reader.Next(&record), TfRecordReader::Result::kEnd);
  // Random access by offset, as index files give them.
  ASSERT_EQ(reader.ReadAt(offsets[2], &record), TfRecordReader::Result::kRecord);
  EXPECT_EQ(record, records[2]);
  ASSERT_EQ(reader.ReadAt(offsets[1], &record), TfRecordReader::Result::kRecord);
  EXPECT_EQ(record, records[1]);
}

TEST_F(TfRecordTest, CorruptRecordNamesFileAndOffset) {
  std::string bytes;
  AppendTfRecord("first", &bytes);
  const size_t second = bytes.size();
  AppendTfRecord("second", &bytes);
  bytes[second + 12 + 2] ^= 0x40;  // a bit inside the second record's data
  TfRecordReader reader;
  const std::string path = Write(bytes);
  ASSERT_TRUE(reader.Open(path));
  std::string record;
  ASSERT_EQ(reader.Next(&record), TfRecordReader::Result::kRecord);
  EXPECT_EQ(reader.Next(&record), TfRecordReader::Result::kCorrupt);
  EXPECT_THAT(reader.error(),
              ::testing::AllOf(::testing::HasSubstr(path),
                               ::testing::HasSubstr("offset " + std::to_string(second))));
}

TEST_F(TfRecordTest, TruncatedRecordIsReported) {
  std::string bytes;
  AppendTfRecord("complete", &bytes);
  AppendTfRecord("cut short", &bytes);
  bytes.resize(bytes.size() - 6);
  TfRecordReader reader;
  ASSERT_TRUE(reader.Open(Write(bytes)));
  std::string record;
  ASSERT_EQ(reader.Next(&record), TfRecordReader::Result::kRecord);
  EXPECT_EQ(reader.Next(&record), TfRecordReader::Result::kTruncated);
  EXPECT_THAT(reader.error(), ::testing::HasSubstr("truncated"));
}

TEST_F(TfRecordTest, DamagedLengthDoesNotAllocateIt) {
  std::string bytes;
  AppendTfRecord("data", &bytes);
  bytes[7] = '\x7f';  // length now enormous, and its CRC no longer matches
  TfRecordReader reader;
  ASSERT_TRUE(reader.Open(Write(bytes)));
  std::string record;
  EXPECT_EQ(reader.Next(&record), TfRecordReader::Result::kCorrupt);
}

}  // namespace
}  // namespace retrain
