// ParseTrainingExample on arbitrary bytes: false with a reason, or fields
// that lie inside the record.
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_target.h"
#include "trainer/input/example_fields.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view record(reinterpret_cast<const char*>(data), size);
  retrain::trainer::TrainingExampleFields fields;
  std::string error;
  if (!retrain::trainer::ParseTrainingExample(record, &fields, &error)) {
    if (error.empty()) __builtin_trap();
    return 0;
  }
  const char* begin = record.data();
  if (fields.encoded.size() > 0 && (fields.encoded.data() < begin ||
                                    fields.encoded.data() + fields.encoded.size() > begin + size)) {
    __builtin_trap();
  }
  return 0;
}
