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

// How much freed memory glibc's malloc keeps for reuse instead of handing
// it back to the kernel. A process that frees and allocates the same sizes
// over and over otherwise faults fresh, zeroed pages in every time.
struct HeapReuse {
  // Free bytes kept at the top of each heap before it is trimmed.
  int kept_free_bytes;
  // Blocks up to this size come from the heaps rather than from mmap()
  // (glibc refuses more than 32 MiB).
  int largest_heap_block;
};

// For a process that makes a record of every image (retrain-worker, the
// validation floor): a buffer of each image's size per record, on every
// thread. With glibc's defaults, with two workers on two cores, the page
// faults were most of a shard phase's time.
inline constexpr HeapReuse kRecordsHeapReuse = {64 << 20, 16 << 20};

// For a trainer: every step frees and allocates the same activations and
// gradients, and the page faults took about three quarters of a CPU step
// of the `small` model (perf; 388 -> 1,568 examples/s on one thread). No
// trimming: it never pays for itself in a training loop; the price is that
// the process keeps its peak heap until it exits.
inline constexpr HeapReuse kTrainingHeapReuse = {0x7fffffff, 32 << 20};

// Applies `reuse` to this process. Call once, early in main(); a no-op
// where the C library is not glibc.
void KeepFreedMemoryForReuse(HeapReuse reuse);

}  // namespace retrain
