// TfRecordReader on arbitrary bytes: every record it returns, then a read
// at an offset the input picks; it must report kTruncated / kCorrupt with
// the offset, never crash or read past the file.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/tfrecord.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/retrain-fuzz-tfrecord-" + std::to_string(getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  retrain::TfRecordReader reader;
  if (!reader.Open(path)) return 0;
  std::string record;
  int n = 0;
  retrain::TfRecordReader::Result r;
  while ((r = reader.Next(&record)) == retrain::TfRecordReader::Result::kRecord && ++n < 1000) {
  }
  if (r != retrain::TfRecordReader::Result::kRecord && r != retrain::TfRecordReader::Result::kEnd &&
      reader.error().empty()) {
    __builtin_trap();  // a failure must say where
  }
  if (size > 0)
    reader.ReadAt(static_cast<int64_t>(data[0]) * 7 % static_cast<int64_t>(size), &record);
  return 0;
}
