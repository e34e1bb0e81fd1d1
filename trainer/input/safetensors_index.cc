#include "trainer/input/safetensors_index.h"

#include "trainer/trainer_error.h"

namespace retrain::trainer {

SafetensorsIndex ReadSafetensorsIndex(const std::string& path) {
  SafetensorsIndex index;
  std::string error;
  switch (ReadSafetensorsIndex(path, &index, &error)) {
    case SafetensorsRead::kOk:
      return index;
    case SafetensorsRead::kCannotOpen:
      throw TrainerError(TrainerError::Kind::kConfig, error);
    case SafetensorsRead::kInvalid:
      break;
  }
  throw TrainerError(TrainerError::Kind::kData, error);
}

SafetensorsIndex ParseSafetensorsHeader(const std::string& header, uint64_t file_size,
                                        const std::string& name) {
  SafetensorsIndex index;
  std::string error;
  if (!ParseSafetensorsHeader(header, file_size, name, &index, &error)) {
    throw TrainerError(TrainerError::Kind::kData, error);
  }
  return index;
}

}  // namespace retrain::trainer
