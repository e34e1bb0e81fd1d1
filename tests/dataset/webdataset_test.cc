#include "dataset/webdataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace retrain::dataset {
namespace {

using ::testing::HasSubstr;

Sample SampleOf(const std::string& key, const std::string& jpeg, int64_t label) {
  Sample s;
  s.key = key;
  s.jpeg = jpeg;
  s.label = label;
  s.label_name = "dog";
  s.filename = "dog/x.jpg";
  s.height = 7;
  s.width = 9;
  return s;
}

// A shard of two samples with its index, as a build writes it.
struct Shard {
  std::string bytes;
  std::vector<std::vector<TarMember>> samples;
};
Shard TwoSampleShard() {
  Shard shard;
  const std::string jpegs[] = {std::string(700, 'a'), std::string(512, 'b')};
  for (int i = 0; i < 2; ++i) {
    std::string out;
    std::vector<TarMember> members;
    AppendSample(SampleOf(SampleKey("train-000003.tar", i), jpegs[i], 3 + i),
                 static_cast<int64_t>(shard.bytes.size()), &out, &members);
    shard.bytes += out;
    shard.samples.push_back(members);
  }
  AppendTarEnd(&shard.bytes);
  return shard;
}

std::string_view SampleBytes(const Shard& shard, int i) {
  const int64_t begin = SampleBegin(shard.samples[i]);
  return std::string_view(shard.bytes).substr(begin, SampleEnd(shard.samples[i]) - begin);
}

TEST(WebDatasetTest, SamplesAreUstarMembersInBlocksWithOneKey) {
  const Shard shard = TwoSampleShard();
  EXPECT_EQ(shard.bytes.size() % kTarBlockSize, 0u);
  const auto& first = shard.samples[0];
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[0].name, "train-000003-000000.jpg");
  EXPECT_EQ(first[1].name, "train-000003-000000.cls");
  EXPECT_EQ(first[2].name, "train-000003-000000.json");
  EXPECT_EQ(first[0].offset, 512);
  EXPECT_EQ(first[0].size, 700);
  EXPECT_EQ(first[1].offset, 512 + 1024 + 512) << "700 bytes take two blocks";
  EXPECT_EQ(shard.bytes.substr(257, 8), std::string("ustar\0"
                                                    "00",
                                                    8));
  EXPECT_EQ(shard.bytes.substr(first[1].offset, first[1].size), "3");
  EXPECT_EQ(shard.bytes.substr(first[2].offset, first[2].size),
            R"({"filename":"dog/x.jpg","height":7,"label":3,"label_name":"dog","width":9})");
  EXPECT_EQ(shard.bytes.substr(shard.bytes.size() - 1024), std::string(1024, '\0'));
}

TEST(WebDatasetTest, TheSameSampleGivesTheSameBytes) {
  EXPECT_EQ(TwoSampleShard().bytes, TwoSampleShard().bytes);
}

TEST(WebDatasetTest, IndexLinesAreDalisAndRoundTrip) {
  const Shard shard = TwoSampleShard();
  EXPECT_EQ(WebDatasetIndexHeader(2), "v1.2 2\n");
  EXPECT_EQ(WebDatasetIndexLine(shard.samples[0]),
            "jpg 512 700 train-000003-000000.jpg cls 2048 1 train-000003-000000.cls "
            "json 3072 74 train-000003-000000.json\n");
  std::vector<TarMember> parsed;
  std::string line = WebDatasetIndexLine(shard.samples[1]);
  line.pop_back();
  ASSERT_TRUE(ParseWebDatasetIndexLine(line, &parsed));
  ASSERT_EQ(parsed.size(), 3u);
  EXPECT_EQ(parsed[2].name, shard.samples[1][2].name);
  EXPECT_EQ(parsed[2].offset, shard.samples[1][2].offset);
  int64_t samples = 0;
  ASSERT_TRUE(ParseWebDatasetIndexHeader("v1.2 2", &samples));
  EXPECT_EQ(samples, 2);
  EXPECT_FALSE(ParseWebDatasetIndexHeader("v1.1 2", &samples));
  EXPECT_FALSE(ParseWebDatasetIndexLine("jpg 512 700", &parsed)) << "a member without its name";
  EXPECT_FALSE(ParseWebDatasetIndexLine("jpg 100 7 a.jpg", &parsed)) << "not at a block's end";
  EXPECT_FALSE(ParseWebDatasetIndexLine("jpg 1024 7 a.jpg cls 512 1 a.cls", &parsed))
      << "members out of order";
  EXPECT_FALSE(ParseWebDatasetIndexLine("", &parsed));
}

TEST(WebDatasetTest, ASampleIsReadBackAsWritten) {
  const Shard shard = TwoSampleShard();
  for (int i = 0; i < 2; ++i) {
    SampleView sample;
    std::vector<TarMember> members;
    std::string error;
    ASSERT_TRUE(ParseSample(SampleBytes(shard, i), SampleBegin(shard.samples[i]), &sample, &members,
                            &error))
        << error;
    EXPECT_EQ(sample.key, SampleKey("train-000003.tar", i));
    EXPECT_EQ(sample.label, 3 + i);
    EXPECT_EQ(sample.jpeg, std::string(i == 0 ? 700 : 512, i == 0 ? 'a' : 'b'));
    EXPECT_EQ(WebDatasetIndexLine(members), WebDatasetIndexLine(shard.samples[i]));
  }
}

TEST(WebDatasetTest, DamageIsFoundAndPlaced) {
  const Shard shard = TwoSampleShard();
  const int64_t begin = SampleBegin(shard.samples[1]);
  const auto parse = [&](std::string bytes) {
    SampleView sample;
    std::string error;
    EXPECT_FALSE(ParseSample(bytes, begin, &sample, nullptr, &error));
    return error;
  };
  std::string bytes(SampleBytes(shard, 1));
  std::string flipped = bytes;
  flipped[10] ^= 1;  // in the first header's name
  EXPECT_THAT(parse(flipped), HasSubstr("tar member at offset " + std::to_string(begin) +
                                        ": header checksum mismatch"));
  EXPECT_THAT(parse(bytes.substr(0, bytes.size() - 1)), HasSubstr("its size runs past the sample"));
  std::string label = bytes;
  label[shard.samples[1][1].offset - begin] = 'x';
  EXPECT_THAT(parse(label), HasSubstr("the label is not a number"));
  // Only the .jpg member: no label.
  EXPECT_THAT(parse(bytes.substr(0, shard.samples[1][0].offset + shard.samples[1][0].size - begin)),
              HasSubstr("it has no .cls member"));
}

TEST(WebDatasetTest, KeysCarryTheShardAndThePosition) {
  EXPECT_EQ(SampleKey("validation-000012.tar", 42), "validation-000012-000042");
}

}  // namespace
}  // namespace retrain::dataset
