// A safetensors header on arbitrary bytes (input: the file's size as 8
// little-endian bytes, then the header's JSON): an index whose every range
// lies in the file and matches its shape and dtype, or false with an error,
// never an exception (the coordinator reads headers with it).
#include <cstring>
#include <string>

#include "tests/fuzz/fuzz_target.h"
#include "trainer/spec/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t file_size = 0;
  std::memcpy(&file_size, data, 8);
  const std::string header(reinterpret_cast<const char*>(data) + 8, size - 8);
  retrain::trainer::SafetensorsIndex index;
  std::string error;
  if (!retrain::trainer::ParseSafetensorsHeader(header, file_size, "fuzz", &index, &error)) {
    if (error.empty()) __builtin_trap();
    return 0;
  }
  for (const auto& [name, e] : index.tensors) {
    if (e.begin > e.end || e.end > file_size) __builtin_trap();
    unsigned __int128 bytes = retrain::trainer::SafetensorsDtypeSize(e.dtype);
    for (int64_t d : e.shape) bytes *= static_cast<uint64_t>(d);
    if (bytes != e.end - e.begin) __builtin_trap();
  }
  return 0;
}
