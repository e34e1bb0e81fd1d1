#include "trainer/event_writer.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/tfrecord.h"
#include "tensorflow/core/util/event.pb.h"

namespace retrain::trainer {
namespace {

TEST(EventWriterTest, ScalarsReadBackAsTensorBoardEvents) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("events_test_" + std::to_string(::getpid()));
  std::string path;
  {
    auto writer = EventWriter::Create(dir.string());
    path = writer->path();
    writer->AddScalar("total_loss", 2.5f, 10);
    writer->AddScalar("learning_rate", 0.1f, 10);
    writer->Flush();
  }
  EXPECT_NE(std::filesystem::path(path).filename().string().find("events.out.tfevents."),
            std::string::npos);
  TfRecordReader reader;
  ASSERT_TRUE(reader.Open(path)) << reader.error();
  std::string record;
  std::vector<tensorflow::Event> events;
  while (reader.Next(&record) == TfRecordReader::Result::kRecord) {
    ASSERT_TRUE(events.emplace_back().ParseFromString(record));
  }
  EXPECT_EQ(reader.Next(&record), TfRecordReader::Result::kEnd) << reader.error();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_EQ(events[1].step(), 10);
  ASSERT_EQ(events[1].summary().value_size(), 1);
  EXPECT_EQ(events[1].summary().value(0).tag(), "total_loss");
  EXPECT_FLOAT_EQ(events[1].summary().value(0).simple_value(), 2.5f);
  EXPECT_EQ(events[2].summary().value(0).tag(), "learning_rate");
  EXPECT_GT(events[2].wall_time(), 1.7e9);
  std::filesystem::remove_all(dir);
}

TEST(EventWriterTest, EventsAreByteIdenticalToProtobufs) {
  tensorflow::Event version;
  version.set_wall_time(1.7e9 + 0.25);
  version.set_file_version("brain.Event:2");
  EXPECT_EQ(SerializeVersionEvent(1.7e9 + 0.25), version.SerializeAsString());
  for (int64_t step : {int64_t{0}, int64_t{1}, int64_t{123456789012}}) {
    for (float value : {0.0f, -1.5f, 3.25e-7f}) {
      tensorflow::Event event;
      event.set_wall_time(1.8e9);
      event.set_step(step);
      auto* v = event.mutable_summary()->add_value();
      v->set_tag("total_loss");
      v->set_simple_value(value);
      EXPECT_EQ(SerializeScalarEvent(1.8e9, step, "total_loss", value),
                event.SerializeAsString())
          << step << " " << value;
    }
  }
}

}  // namespace
}  // namespace retrain::trainer
