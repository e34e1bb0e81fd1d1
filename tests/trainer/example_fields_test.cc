// The trainer's wire-format reader of tf.Example against libprotobuf's
// generated classes: what protobuf writes, it reads; what is malformed, it
// refuses.
#include "trainer/input/example_fields.h"

#include <gtest/gtest.h>

#include "tensorflow/core/example/example.pb.h"
#include "tests/trainer/input/test_dataset.h"

namespace retrain::trainer {
namespace {

tensorflow::Example ReferenceExample(const std::string& jpeg, int64_t label) {
  tensorflow::Example example;
  auto& f = *example.mutable_features()->mutable_feature();
  f["image/height"].mutable_int64_list()->add_value(375);
  f["image/class/text"].mutable_bytes_list()->add_value("daisy");
  f["image/class/label"].mutable_int64_list()->add_value(label);
  f["image/encoded"].mutable_bytes_list()->add_value(jpeg);
  f["image/object/bbox/xmin"].mutable_float_list()->add_value(0.25f);
  return example;
}

TEST(ExampleFieldsTest, ReadsWhatProtobufWrites) {
  const std::string jpeg("\xff\xd8\x00 image bytes \xff\xd9", 17);
  for (int64_t label : {int64_t{0}, int64_t{1}, int64_t{300}, int64_t{1} << 40, int64_t{-1}}) {
    const std::string record = ReferenceExample(jpeg, label).SerializeAsString();
    TrainingExampleFields fields;
    std::string error;
    ASSERT_TRUE(ParseTrainingExample(record, &fields, &error)) << error;
    EXPECT_EQ(fields.encoded, jpeg);
    EXPECT_EQ(fields.label, label);
  }
}

TEST(ExampleFieldsTest, ReadsUnpackedInt64Lists) {
  // proto2 writers (and old TensorFlow) may write repeated int64 unpacked.
  std::string list, feature, entry, features, example;
  const std::string label_list("\x08\x07", 2);  // value = 7 as a plain varint field
  feature = std::string("\x1a") + static_cast<char>(label_list.size()) + label_list;
  tensorflow::Feature parsed;
  ASSERT_TRUE(parsed.ParseFromString(feature));
  ASSERT_EQ(parsed.int64_list().value_size(), 1);
  tensorflow::Example reference = ReferenceExample("x", 0);
  (*reference.mutable_features()->mutable_feature())["image/class/label"] = parsed;
  TrainingExampleFields fields;
  std::string error;
  ASSERT_TRUE(ParseTrainingExample(reference.SerializeAsString(), &fields, &error)) << error;
  EXPECT_EQ(fields.label, 7);
}

TEST(ExampleFieldsTest, MatchesTheTestDatasetWriter) {
  const std::string record = testing::MakeExample("jpegdata", 4, 3, 5, "five", "f.jpg");
  tensorflow::Example parsed;
  ASSERT_TRUE(parsed.ParseFromString(record));
  EXPECT_EQ(parsed.features().feature().at("image/filename").bytes_list().value(0), "f.jpg");
  EXPECT_EQ(parsed.features().feature().at("image/width").int64_list().value(0), 4);
  TrainingExampleFields fields;
  std::string error;
  ASSERT_TRUE(ParseTrainingExample(record, &fields, &error)) << error;
  EXPECT_EQ(fields.encoded, "jpegdata");
  EXPECT_EQ(fields.label, 5);
}

TEST(ExampleFieldsTest, RefusesMissingFeaturesAndMalformedData) {
  TrainingExampleFields fields;
  std::string error;
  tensorflow::Example no_label = ReferenceExample("x", 1);
  no_label.mutable_features()->mutable_feature()->erase("image/class/label");
  EXPECT_FALSE(ParseTrainingExample(no_label.SerializeAsString(), &fields, &error));
  EXPECT_EQ(error, "the example has no image/class/label");

  tensorflow::Example two_images = ReferenceExample("x", 1);
  (*two_images.mutable_features()->mutable_feature())["image/encoded"]
      .mutable_bytes_list()
      ->add_value("y");
  EXPECT_FALSE(ParseTrainingExample(two_images.SerializeAsString(), &fields, &error));
  EXPECT_EQ(error, "the example has no image/encoded bytes");

  tensorflow::Example label_as_bytes = ReferenceExample("x", 1);
  (*label_as_bytes.mutable_features()->mutable_feature())["image/class/label"]
      .mutable_bytes_list()
      ->add_value("1");
  EXPECT_FALSE(ParseTrainingExample(label_as_bytes.SerializeAsString(), &fields, &error));
  EXPECT_EQ(error, "the example has no image/class/label");

  const std::string good = ReferenceExample("some image", 3).SerializeAsString();
  for (size_t cut = 1; cut < good.size(); cut += 3) {
    const std::string truncated = good.substr(0, cut);
    tensorflow::Example reference;
    const bool protobuf_ok = reference.ParseFromString(truncated);
    if (!protobuf_ok) {
      EXPECT_FALSE(ParseTrainingExample(truncated, &fields, &error)) << "cut at " << cut;
    }
  }
  EXPECT_FALSE(ParseTrainingExample("\xff\xff\xff", &fields, &error));
  EXPECT_EQ(error, "not a serialized tf.Example");
  EXPECT_FALSE(ParseTrainingExample("not a protobuf at all", &fields, &error));
}

}  // namespace
}  // namespace retrain::trainer
