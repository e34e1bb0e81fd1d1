// A safetensors file's index (trainer/spec/safetensors_header.h), as the
// trainer reads it: failures are TrainerErrors.
#pragma once

#include <cstdint>
#include <string>

#include "trainer/spec/safetensors_header.h"

namespace retrain::trainer {

// Reads and checks the index. Throws TrainerError: kConfig when the file
// cannot be opened, kData naming the file and the tensor when it is not a
// usable safetensors file.
SafetensorsIndex ReadSafetensorsIndex(const std::string& path);
// The same from a header's bytes (after the 8-byte length), for a file of
// `file_size` bytes; `name` is used in messages. For tests and fuzzing.
SafetensorsIndex ParseSafetensorsHeader(const std::string& header, uint64_t file_size,
                                        const std::string& name);

}  // namespace retrain::trainer
