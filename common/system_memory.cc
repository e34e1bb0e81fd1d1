#include "common/system_memory.h"

#include <algorithm>
#include <cstddef>  // defines __GLIBC__ on glibc
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace retrain {

namespace {

// The first line of a file, or "" when it cannot be read.
std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// A number of bytes; -1 for "max", nonsense, or v1's "no limit" (a value
// near 2^63).
int64_t ParseLimit(const std::string& text) {
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == 0 || v < 0 || v >= (int64_t{1} << 62)) return -1;
    return v;
  } catch (const std::exception&) {
    return -1;
  }
}

// Where a controller's files are: the process's own cgroup below the mount
// when it is visible there, else the mount itself (a container sees its own
// cgroup at the mount's root).
std::string CgroupDir(const std::string& mount, const std::string& path,
                      const std::string& probe_file) {
  const std::string own = mount + path;
  if (!FirstLine(own + "/" + probe_file).empty()) return own;
  return mount;
}

}  // namespace

CgroupLimits ReadCgroupLimits(const std::string& root) {
  CgroupLimits out;
  std::ifstream in(root + "/proc/self/cgroup");
  std::string line, v2_path;
  std::string memory_path, cpu_path, cpu_controllers;
  bool v2 = false, v1_memory = false, v1_cpu = false;
  while (std::getline(in, line)) {
    // "hierarchy-id:controllers:path"
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    if (line.compare(0, a, "0") == 0 && controllers.empty()) {
      v2 = true;
      v2_path = path;
    }
    std::stringstream names(controllers);
    std::string name;
    while (std::getline(names, name, ',')) {
      if (name == "memory") v1_memory = true, memory_path = path;
      if (name == "cpu") v1_cpu = true, cpu_path = path, cpu_controllers = controllers;
    }
  }
  const std::string sys = root + "/sys/fs/cgroup";
  if (v2 && !FirstLine(sys + "/cgroup.controllers").empty()) {
    const std::string dir = CgroupDir(sys, v2_path == "/" ? "" : v2_path, "memory.max");
    out.memory_limit_bytes = ParseLimit(FirstLine(dir + "/memory.max"));
    out.memory_usage_bytes = ParseLimit(FirstLine(dir + "/memory.current"));
    std::stringstream cpu(FirstLine(dir + "/cpu.max"));
    std::string quota;
    int64_t period = 0;
    if (cpu >> quota >> period && quota != "max" && period > 0) {
      out.cpus = static_cast<double>(ParseLimit(quota)) / static_cast<double>(period);
      if (out.cpus <= 0) out.cpus = -1;
    }
    return out;
  }
  if (v1_memory) {
    const std::string dir =
        CgroupDir(sys + "/memory", memory_path == "/" ? "" : memory_path, "memory.limit_in_bytes");
    out.memory_limit_bytes = ParseLimit(FirstLine(dir + "/memory.limit_in_bytes"));
    out.memory_usage_bytes = ParseLimit(FirstLine(dir + "/memory.usage_in_bytes"));
  }
  if (v1_cpu) {
    std::string mount = sys + "/" + cpu_controllers;
    if (FirstLine(mount + "/cpu.cfs_period_us").empty()) mount = sys + "/cpu";
    const std::string dir = CgroupDir(mount, cpu_path == "/" ? "" : cpu_path, "cpu.cfs_period_us");
    const int64_t quota = ParseLimit(FirstLine(dir + "/cpu.cfs_quota_us"));
    const int64_t period = ParseLimit(FirstLine(dir + "/cpu.cfs_period_us"));
    if (quota > 0 && period > 0) out.cpus = static_cast<double>(quota) / static_cast<double>(period);
  }
  return out;
}

int64_t AvailableMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t kb = 0, available = -1;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") {
      available = kb * 1024;
      break;
    }
  }
  const CgroupLimits limits = ReadCgroupLimits();
  if (limits.memory_limit_bytes > 0 && limits.memory_usage_bytes >= 0) {
    const int64_t left = std::max<int64_t>(0, limits.memory_limit_bytes - limits.memory_usage_bytes);
    available = available < 0 ? left : std::min(available, left);
  }
  return available;
}

void KeepFreedMemoryForReuse(HeapReuse reuse) {
#if defined(__GLIBC__)
  mallopt(M_TRIM_THRESHOLD, reuse.kept_free_bytes);
  mallopt(M_MMAP_THRESHOLD, reuse.largest_heap_block);
#else
  (void)reuse;
#endif
}

}  // namespace retrain
