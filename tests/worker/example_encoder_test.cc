#include "worker/example_encoder.h"

#include <gtest/gtest.h>

#include "tensorflow/core/example/example.pb.h"

namespace retrain::worker {
namespace {

TEST(ExampleEncoderTest, CarriesExactlyTheReferenceFeatures) {
  ExampleFields f;
  f.jpeg = "\xff\xd8\xff jpeg bytes";
  f.height = 375;
  f.width = 500;
  f.label = 2;
  f.text = "dandelion";
  f.filename = "x.jpg";
  tensorflow::Example ex;
  ASSERT_TRUE(ex.ParseFromString(EncodeExample(f)));
  const auto& m = ex.features().feature();
  EXPECT_EQ(m.size(), 9u);
  EXPECT_EQ(m.at("image/height").int64_list().value(0), 375);
  EXPECT_EQ(m.at("image/width").int64_list().value(0), 500);
  EXPECT_EQ(m.at("image/colorspace").bytes_list().value(0), "RGB");
  EXPECT_EQ(m.at("image/channels").int64_list().value(0), 3);
  EXPECT_EQ(m.at("image/class/label").int64_list().value(0), 2);
  EXPECT_EQ(m.at("image/class/text").bytes_list().value(0), "dandelion");
  EXPECT_EQ(m.at("image/format").bytes_list().value(0), "JPEG");
  EXPECT_EQ(m.at("image/filename").bytes_list().value(0), "x.jpg");
  EXPECT_EQ(m.at("image/encoded").bytes_list().value(0), f.jpeg);
}

TEST(ExampleEncoderTest, DeterministicBytes) {
  ExampleFields f;
  f.jpeg = "abc";
  f.text = "t";
  f.filename = "n";
  const std::string first = EncodeExample(f);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(EncodeExample(f), first);
  // Keys are written in sorted order: "image/channels" is the first entry.
  EXPECT_NE(first.find("image/channels"), std::string::npos);
  EXPECT_LT(first.find("image/channels"), first.find("image/width"));
}

}  // namespace
}  // namespace retrain::worker
