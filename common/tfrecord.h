// TFRecord framing (tensorflow/core/lib/io/record_writer.cc):
//   uint64 length (LE) | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
//
// Free of abseil and gRPC: the trainer builds this on machines that have
// neither.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace retrain {

// Bytes of framing around each record.
inline constexpr int64_t kTfRecordOverhead = 8 + 4 + 4;

// Appends `data` framed as one TFRecord to `out`.
void AppendTfRecord(std::string_view data, std::string* out);

// Reads records one after another from a file. Not thread-safe.
class TfRecordReader {
 public:
  enum class Result {
    kRecord,     // a record was read
    kEnd,        // clean end of file
    kTruncated,  // the file ends inside a record
    kCorrupt,    // a checksum does not match
    kIoError,    // the file cannot be opened or read
  };

  TfRecordReader() = default;
  ~TfRecordReader();
  TfRecordReader(const TfRecordReader&) = delete;
  TfRecordReader& operator=(const TfRecordReader&) = delete;

  // False when the file cannot be opened; error() says why.
  bool Open(const std::string& path);

  // Reads the next record into `record`. On kTruncated, kCorrupt and
  // kIoError, error() names the file and the byte offset of the record's
  // length field, e.g. "/d/train-00000-of-00002: corrupt record at offset
  // 1234 (data checksum mismatch)".
  Result Next(std::string* record);

  // Reads the record whose length field is at `offset` (as DALI index files
  // list them), leaving the reader positioned after it.
  Result ReadAt(int64_t offset, std::string* record);

  // Byte offset of the next record's length field.
  int64_t offset() const { return offset_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

 private:
  Result Fail(Result result, int64_t at, const char* what);

  std::string path_;
  std::FILE* file_ = nullptr;
  int64_t offset_ = 0;
  int64_t size_ = 0;
  std::string error_;
};

}  // namespace retrain
