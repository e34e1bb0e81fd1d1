#include "trainer/input/dataset_manifest.h"

#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

[[noreturn]] void DataError(const std::string& message) {
  throw TrainerError(TrainerError::Kind::kData, message);
}

}  // namespace

const SplitInfo& DatasetManifest::split(const std::string& name) const {
  const SplitInfo* found = FindSplit(name);
  if (found == nullptr) {
    DataError(dataset::NoSplitError(data_dir, name));
  }
  return *found;
}

DatasetManifest ParseDatasetManifest(const std::string& json_text, const std::string& data_dir) {
  DatasetManifest m;
  std::string error;
  if (!dataset::ParseManifest(json_text, data_dir, &m, &error)) DataError(error);
  return m;
}

DatasetManifest LoadDatasetManifest(const std::string& data_dir) {
  DatasetManifest m;
  std::string error;
  if (!dataset::LoadManifest(data_dir, &m, &error)) DataError(error);
  return m;
}

}  // namespace retrain::trainer
