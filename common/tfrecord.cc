#include "common/tfrecord.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
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

absl::Status TfRecordReader::Open(const std::string& path) {
  path_ = path;
  file_ = std::fopen(path.c_str(), "rb");
  if (file_ == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  offset_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<bool> TfRecordReader::Next(std::string* record) {
  if (file_ == nullptr) return absl::FailedPreconditionError("TfRecordReader is not open");
  const int64_t start = offset_;
  char header[12];
  size_t got = std::fread(header, 1, sizeof(header), file_);
  if (got == 0 && std::feof(file_)) return false;
  auto truncated = [&](const char* what) {
    return absl::OutOfRangeError(
        absl::StrCat(path_, ": truncated record at offset ", start, " (", what, ")"));
  };
  if (got != sizeof(header)) return truncated("header");
  const uint64_t length = GetFixed64(header);
  if (UnmaskCrc(GetFixed32(header + 8)) != Crc32cExtend(0, header, 8)) {
    return absl::DataLossError(
        absl::StrCat(path_, ": corrupt record at offset ", start, " (length checksum mismatch)"));
  }
  // A length larger than the rest of the file is truncation; check before
  // allocating so a damaged length cannot exhaust memory.
  const long here = std::ftell(file_);
  std::fseek(file_, 0, SEEK_END);
  const long end = std::ftell(file_);
  std::fseek(file_, here, SEEK_SET);
  if (length + 4 > static_cast<uint64_t>(end - here)) return truncated("data");
  record->resize(length);
  char footer[4];
  if (std::fread(record->data(), 1, length, file_) != length ||
      std::fread(footer, 1, 4, file_) != 4) {
    return truncated("data");
  }
  if (UnmaskCrc(GetFixed32(footer)) != Crc32c(*record)) {
    return absl::DataLossError(
        absl::StrCat(path_, ": corrupt record at offset ", start, " (data checksum mismatch)"));
  }
  offset_ = start + kTfRecordOverhead + static_cast<int64_t>(length);
  return true;
}

}  // namespace retrain
