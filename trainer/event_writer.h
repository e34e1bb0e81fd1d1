// TensorBoard event files: TFRecord-framed tensorflow.Event protos in
// <logdir>/events.out.tfevents.<unix seconds>.<hostname> (FORMATS.md).
// Not thread-safe; one writer per file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

namespace retrain::trainer {

// A serialized tensorflow.Event: the file-version record that opens every
// event file, and one scalar summary (the fields TensorBoard reads;
// proto3 leaves a zero step out, as protobuf does).
std::string SerializeVersionEvent(double wall_time);
std::string SerializeScalarEvent(double wall_time, int64_t step, const std::string& tag,
                                 float value);

class EventWriter {
 public:
  // Creates the file (and `logdir`) and writes the "brain.Event:2" version
  // record. Throws TrainerError when the directory cannot be written.
  static std::unique_ptr<EventWriter> Create(const std::string& logdir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // Appends one scalar summary event at `step`.
  void AddScalar(const std::string& tag, float value, int64_t step);
  // Makes what was written so far visible to readers.
  void Flush();

  const std::string& path() const { return path_; }

 private:
  EventWriter(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  void Write(const std::string& serialized_event);

  std::string path_;
  std::FILE* file_;
};

}  // namespace retrain::trainer
