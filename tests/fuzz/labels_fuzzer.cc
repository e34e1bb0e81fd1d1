// The labels-file parser on arbitrary text: labels that are neither empty,
// nor paths, nor duplicates, or an error listing the bad lines.
#include <set>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_target.h"
#include "worker/build/labels.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto labels = retrain::worker::ParseLabels(text, "labels.txt");
  if (!labels.ok()) {
    if (labels.status().message().empty()) __builtin_trap();
    return 0;
  }
  std::set<std::string> seen;
  for (const auto& l : *labels) {
    if (l.name.empty() || l.name.find('/') != std::string::npos || !seen.insert(l.name).second) {
      __builtin_trap();
    }
  }
  return 0;
}
