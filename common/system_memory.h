// What the operating system says about memory. No dependencies: the trainer
// and the worker both use it.
#pragma once

#include <cstdint>

namespace retrain {

// Bytes the system can still give without swapping (MemAvailable in
// /proc/meminfo: free memory plus reclaimable cache), or -1 when unknown.
int64_t AvailableMemoryBytes();

}  // namespace retrain
