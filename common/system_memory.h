// What the operating system says about memory and CPUs, container limits
// included. No dependencies: the trainer and the worker both use it.
#pragma once

#include <cstdint>
#include <string>

namespace retrain {

// The limits of this process's control group (a container's, say): cgroup
// v2 (memory.max, memory.current, cpu.max) or else v1
// (memory.limit_in_bytes, memory.usage_in_bytes, cpu.cfs_quota_us /
// cpu.cfs_period_us). -1 for what is unlimited or unknown.
struct CgroupLimits {
  int64_t memory_limit_bytes = -1;
  int64_t memory_usage_bytes = -1;
  double cpus = -1;
};

// Reads them under `root` ("" for this machine's /proc and /sys; tests pass
// a directory laid out like them).
CgroupLimits ReadCgroupLimits(const std::string& root = "");

// Bytes the system can still give this process without swapping:
// MemAvailable in /proc/meminfo (free memory plus reclaimable cache), less
// where the control group's limit leaves less; -1 when unknown.
int64_t AvailableMemoryBytes();

}  // namespace retrain
