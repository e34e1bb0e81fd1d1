// TFRecord framing (tensorflow/core/lib/io/record_writer.cc):
//   uint64 length (LE) | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace retrain {

// Bytes of framing around each record.
inline constexpr int64_t kTfRecordOverhead = 8 + 4 + 4;

// Appends `data` framed as one TFRecord to `out`.
void AppendTfRecord(std::string_view data, std::string* out);

// Reads records one after another from a file. Not thread-safe.
class TfRecordReader {
 public:
  TfRecordReader() = default;
  ~TfRecordReader();
  TfRecordReader(const TfRecordReader&) = delete;
  TfRecordReader& operator=(const TfRecordReader&) = delete;

  absl::Status Open(const std::string& path);

  // Reads the next record into `record`. Returns false at a clean end of
  // file. A record cut short is OUT_OF_RANGE ("truncated record"), a CRC
  // mismatch DATA_LOSS ("corrupt record"); both name the file and the byte
  // offset of the record's length field.
  absl::StatusOr<bool> Next(std::string* record);

  // Byte offset of the next record's length field.
  int64_t offset() const { return offset_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  int64_t offset_ = 0;
};

}  // namespace retrain
