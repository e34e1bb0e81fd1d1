#include "worker/gpu_inventory.h"

#include <cstdio>
#include <sstream>
#include <string>

namespace retrain::worker {

std::vector<retrain::v1::GpuInfo> DetectGpus() {
  std::vector<retrain::v1::GpuInfo> gpus;
  // CSV lines "0, NVIDIA H200, 143771, 143280" (memory in MiB).
  std::FILE* p = popen(
      "nvidia-smi --query-gpu=index,name,memory.total,memory.free --format=csv,noheader,nounits "
      "2>/dev/null",
      "r");
  if (p == nullptr) return gpus;
  char line[512];
  while (std::fgets(line, sizeof line, p) != nullptr) {
    std::stringstream in(line);
    std::string index, name, total, free;
    if (!std::getline(in, index, ',') || !std::getline(in, name, ',') ||
        !std::getline(in, total, ',') || !std::getline(in, free, ',')) {
      continue;
    }
    try {
      retrain::v1::GpuInfo g;
      g.set_index(std::stoi(index));
      g.set_name(name.substr(name.find_first_not_of(' ')));
      g.set_memory_bytes(std::stoll(total) << 20);
      g.set_free_memory_bytes(std::stoll(free) << 20);
      gpus.push_back(std::move(g));
    } catch (const std::exception&) {
      // A line nvidia-smi wrote for something else (an error): no GPU.
    }
  }
  pclose(p);
  return gpus;
}

}  // namespace retrain::worker
