// dataset.json parsing on arbitrary text: a manifest whose counts hold
// together, or TrainerError(kData) saying what is wrong.
#include <string>

#include "tests/fuzz/fuzz_target.h"
#include "trainer/input/dataset_manifest.h"
#include "trainer/trainer_error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto manifest = retrain::trainer::ParseDatasetManifest(text, "/data/out");
    for (const auto& [name, split] : manifest.splits) (void)split.mean_record_bytes();
  } catch (const retrain::trainer::TrainerError& e) {
    if (e.kind() != retrain::trainer::TrainerError::Kind::kData) __builtin_trap();
  }
  return 0;
}
