#include "trainer/event_writer.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "common/proto_wire.h"
#include "common/tfrecord.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {

namespace {

double WallTime() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Field numbers of tensorflow/core/util/event.proto.
constexpr uint32_t kEventWallTime = 1;
constexpr uint32_t kEventStep = 2;
constexpr uint32_t kEventFileVersion = 3;
constexpr uint32_t kEventSummary = 5;
constexpr uint32_t kSummaryValue = 1;
constexpr uint32_t kValueTag = 1;
constexpr uint32_t kValueSimpleValue = 2;

}  // namespace

std::string SerializeVersionEvent(double wall_time) {
  std::string event;
  wire::AppendDoubleField(kEventWallTime, wall_time, &event);
  wire::AppendBytesField(kEventFileVersion, "brain.Event:2", &event);
  return event;
}

std::string SerializeScalarEvent(double wall_time, int64_t step, const std::string& tag,
                                 float value) {
  std::string summary_value;
  wire::AppendBytesField(kValueTag, tag, &summary_value);
  wire::AppendFloatField(kValueSimpleValue, value, &summary_value);
  std::string summary;
  wire::AppendBytesField(kSummaryValue, summary_value, &summary);
  std::string event;
  wire::AppendDoubleField(kEventWallTime, wall_time, &event);
  if (step != 0) wire::AppendVarintField(kEventStep, static_cast<uint64_t>(step), &event);
  wire::AppendBytesField(kEventSummary, summary, &event);
  return event;
}

std::unique_ptr<EventWriter> EventWriter::Create(const std::string& logdir) {
  std::error_code ec;
  std::filesystem::create_directories(logdir, ec);
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  const std::string path = logdir + "/events.out.tfevents." +
                           std::to_string(static_cast<int64_t>(WallTime())) + "." + host;
  std::FILE* file = std::fopen(path.c_str(), "ab");
  if (file == nullptr) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       "--train_dir: cannot write " + path + ": " + std::strerror(errno));
  }
  std::unique_ptr<EventWriter> writer(new EventWriter(path, file));
  writer->Write(SerializeVersionEvent(WallTime()));
  writer->Flush();
  return writer;
}

EventWriter::~EventWriter() { std::fclose(file_); }

void EventWriter::Write(const std::string& serialized_event) {
  std::string framed;
  AppendTfRecord(serialized_event, &framed);
  std::fwrite(framed.data(), 1, framed.size(), file_);
}

void EventWriter::AddScalar(const std::string& tag, float value, int64_t step) {
  Write(SerializeScalarEvent(WallTime(), step, tag, value));
}

void EventWriter::Flush() { std::fflush(file_); }

}  // namespace retrain::trainer
