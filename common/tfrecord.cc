#include "common/tfrecord.h"

#include <cerrno>
#include <cstring>

#include "common/crc32c.h"

namespace retrain {
namespace {

void PutFixed32(uint32_t v, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutFixed64(uint64_t v, char* p) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t GetFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

void AppendTfRecord(std::string_view data, std::string* out) {
  char header[12];
  PutFixed64(data.size(), header);
  PutFixed32(MaskCrc(Crc32cExtend(0, header, 8)), header + 8);
  char footer[4];
  PutFixed32(MaskCrc(Crc32c(data)), footer);
  out->reserve(out->size() + data.size() + kTfRecordOverhead);
  out->append(header, sizeof(header));
  out->append(data.data(), data.size());
  out->append(footer, sizeof(footer));
}

TfRecordReader::~TfRecordReader() {
  if (file_ != nullptr) std::fclose(file_);
}

bool TfRecordReader::Open(const std::string& path) {
  if (file_ != nullptr) std::fclose(file_);
  path_ = path;
  offset_ = 0;
  error_.clear();
  file_ = std::fopen(path.c_str(), "rb");
  if (file_ == nullptr || std::fseek(file_, 0, SEEK_END) != 0) {
    error_ = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  size_ = std::ftell(file_);
  std::fseek(file_, 0, SEEK_SET);
  return true;
}

TfRecordReader::Result TfRecordReader::Fail(Result result, int64_t at, const char* what) {
  const char* kind = result == Result::kTruncated ? "truncated" : result == Result::kCorrupt
                                                                      ? "corrupt"
                                                                      : "unreadable";
  error_ = path_ + ": " + kind + " record at offset " + std::to_string(at) + " (" + what + ")";
  return result;
}

TfRecordReader::Result TfRecordReader::ReadAt(int64_t offset, std::string* record) {
  if (file_ == nullptr) return Fail(Result::kIoError, offset, "not open");
  if (offset < 0 || offset > size_ || std::fseek(file_, offset, SEEK_SET) != 0) {
    return Fail(Result::kIoError, offset, "offset outside the file");
  }
  offset_ = offset;
  return Next(record);
}

TfRecordReader::Result TfRecordReader::Next(std::string* record) {
  if (file_ == nullptr) return Fail(Result::kIoError, offset_, "not open");
  const int64_t start = offset_;
  char header[12];
  const size_t got = std::fread(header, 1, sizeof(header), file_);
  if (got == 0 && std::feof(file_)) return Result::kEnd;
  if (got != sizeof(header)) {
    return std::ferror(file_) ? Fail(Result::kIoError, start, std::strerror(errno))
                              : Fail(Result::kTruncated, start, "header");
  }
  const uint64_t length = GetFixed64(header);
  if (UnmaskCrc(GetFixed32(header + 8)) != Crc32cExtend(0, header, 8)) {
    return Fail(Result::kCorrupt, start, "length checksum mismatch");
  }
  // A length beyond the end of the file is truncation; checked before
  // allocating, so a damaged length cannot exhaust memory.
  const int64_t left = size_ - start - 12;
  if (length + 4 > static_cast<uint64_t>(left < 0 ? 0 : left)) {
    return Fail(Result::kTruncated, start, "data");
  }
  record->resize(length);
  char footer[4];
  if (std::fread(record->data(), 1, length, file_) != length ||
      std::fread(footer, 1, 4, file_) != 4) {
    return Fail(Result::kTruncated, start, "data");
  }
  if (UnmaskCrc(GetFixed32(footer)) != Crc32c(*record)) {
    return Fail(Result::kCorrupt, start, "data checksum mismatch");
  }
  offset_ = start + kTfRecordOverhead + static_cast<int64_t>(length);
  return Result::kRecord;
}

}  // namespace retrain
