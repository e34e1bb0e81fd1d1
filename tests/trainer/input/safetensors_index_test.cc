#include "trainer/input/safetensors_index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/input/test_dataset.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

using ::testing::HasSubstr;

// Parses `header` as the header of a file with `data_bytes` bytes of data
// and expects a TrainerError(kData) whose message contains `part`.
void ExpectRefused(const std::string& header, uint64_t data_bytes, const std::string& part) {
  try {
    ParseSafetensorsHeader(header, 8 + header.size() + data_bytes, "w.safetensors");
    FAIL() << "accepted: " << header;
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kData) << e.what();
    EXPECT_THAT(e.what(), HasSubstr("w.safetensors"));
    EXPECT_THAT(e.what(), HasSubstr(part));
  }
}

// The 8-byte little-endian length, then the header, then `data`.
std::string FileBytes(const std::string& header, const std::string& data) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  return bytes + header + data;
}

TEST(SafetensorsIndexTest, ReadsNamesDtypesShapesAndAbsoluteOffsets) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("fc.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[24,32]}})";
  const std::string path = testing::MakeTempDir("safetensors") + "/w.safetensors";
  testing::WriteFile(path, FileBytes(header, std::string(32, '\0')));
  const SafetensorsIndex index = ReadSafetensorsIndex(path);
  ASSERT_EQ(index.tensors.size(), 2u);
  const SafetensorsEntry& fc = index.tensors.at("fc.weight");
  EXPECT_EQ(fc.dtype, "F32");
  EXPECT_EQ(fc.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(fc.begin, 8 + header.size());
  EXPECT_EQ(fc.end, 8 + header.size() + 24);
  EXPECT_TRUE(index.tensors.at("bn.num_batches_tracked").shape.empty());
  EXPECT_EQ(index.metadata.at("format"), "pt");
  EXPECT_TRUE(IsSafetensorsPath(path));
  EXPECT_FALSE(IsSafetensorsPath(testing::MakeTempDir("safetensors") + "/model.ckpt-10"));
}

TEST(SafetensorsIndexTest, RefusesHeadersThatDoNotDescribeTheData) {
  ExpectRefused("not json", 0, "not a JSON object");
  ExpectRefused(R"(["a"])", 0, "not a JSON object");
  ExpectRefused(R"({"w":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", 4,
                "tensor \"w\": unknown dtype F99");
  ExpectRefused(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4, "no shape");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4,
                "not a whole number");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4,
                "holds 4 bytes, its shape needs 8");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4,
                "truncated download");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "outside the file");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8,
                "data_offsets is not a pair");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8,
                "overflows");
  ExpectRefused(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                12, "\"a\" and \"b\" share bytes");
  ExpectRefused(R"({"__metadata__":{"n":3}})", 0, "__metadata__.n is not a string");
}

TEST(SafetensorsIndexTest, RefusesShortFilesAndHeaderLengthsPastTheEnd) {
  const std::string dir = testing::MakeTempDir("safetensors-short");
  for (const auto& [bytes, part] : std::vector<std::pair<std::string, std::string>>{
           {"abc", "shorter than its 8-byte header length"},
           {FileBytes("{}", "").substr(0, 9), "exceeds the file"},
           {std::string(8, '\xff'), "exceeds the format's limit"}}) {
    testing::WriteFile(dir + "/w.safetensors", bytes);
    try {
      ReadSafetensorsIndex(dir + "/w.safetensors");
      FAIL() << "accepted " << bytes.size() << " bytes";
    } catch (const TrainerError& e) {
      EXPECT_EQ(e.kind(), TrainerError::Kind::kData);
      EXPECT_THAT(e.what(), HasSubstr(part));
    }
  }
  try {
    ReadSafetensorsIndex(dir + "/missing.safetensors");
    FAIL() << "opened a missing file";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig);
    EXPECT_THAT(e.what(), HasSubstr("missing.safetensors: cannot open"));
  }
}

}  // namespace
}  // namespace retrain::trainer
