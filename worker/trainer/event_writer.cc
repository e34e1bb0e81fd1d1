#include "worker/trainer/event_writer.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "common/tfrecord.h"
#include "tensorflow/core/util/event.pb.h"
#include "worker/trainer/trainer_error.h"

namespace retrain::trainer {

namespace {

double WallTime() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

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
  tensorflow::Event version;
  version.set_wall_time(WallTime());
  version.set_file_version("brain.Event:2");
  writer->Write(version.SerializeAsString());
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
  tensorflow::Event event;
  event.set_wall_time(WallTime());
  event.set_step(step);
  auto* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(value);
  Write(event.SerializeAsString());
}

void EventWriter::Flush() { std::fflush(file_); }

}  // namespace retrain::trainer
