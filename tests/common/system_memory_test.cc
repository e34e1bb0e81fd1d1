#include "common/system_memory.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace retrain {
namespace {

namespace fs = std::filesystem;

// A directory laid out like / with the given files.
class FakeRoot {
 public:
  FakeRoot() : dir_(fs::temp_directory_path() / ("retrain-cgroup-" + std::to_string(::getpid()) +
                                                  "-" + std::to_string(counter_++))) {}
  ~FakeRoot() { fs::remove_all(dir_); }
  FakeRoot& Write(const std::string& path, const std::string& text) {
    fs::create_directories((dir_ / path).parent_path());
    std::ofstream(dir_ / path) << text << "\n";
    return *this;
  }
  std::string path() const { return dir_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
};

TEST(CgroupLimitsTest, V2ContainerSeesItsOwnCgroupAtTheMountRoot) {
  FakeRoot root;
  root.Write("proc/self/cgroup", "0::/")
      .Write("sys/fs/cgroup/cgroup.controllers", "cpu memory")
      .Write("sys/fs/cgroup/memory.max", "4294967296")
      .Write("sys/fs/cgroup/memory.current", "1073741824")
      .Write("sys/fs/cgroup/cpu.max", "250000 100000");
  const CgroupLimits l = ReadCgroupLimits(root.path());
  EXPECT_EQ(l.memory_limit_bytes, int64_t{4} << 30);
  EXPECT_EQ(l.memory_usage_bytes, int64_t{1} << 30);
  EXPECT_DOUBLE_EQ(l.cpus, 2.5);
}

TEST(CgroupLimitsTest, V2UnlimitedAndNestedPaths) {
  FakeRoot root;
  root.Write("proc/self/cgroup", "0::/kubepods/pod1")
      .Write("sys/fs/cgroup/cgroup.controllers", "cpu memory")
      .Write("sys/fs/cgroup/kubepods/pod1/memory.max", "max")
      .Write("sys/fs/cgroup/kubepods/pod1/memory.current", "123")
      .Write("sys/fs/cgroup/kubepods/pod1/cpu.max", "max 100000");
  const CgroupLimits l = ReadCgroupLimits(root.path());
  EXPECT_EQ(l.memory_limit_bytes, -1);
  EXPECT_EQ(l.memory_usage_bytes, 123);
  EXPECT_EQ(l.cpus, -1);
}

TEST(CgroupLimitsTest, V1MemoryAndCpu) {
  FakeRoot root;
  root.Write("proc/self/cgroup", "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/")
      .Write("sys/fs/cgroup/memory/memory.limit_in_bytes", "2147483648")
      .Write("sys/fs/cgroup/memory/memory.usage_in_bytes", "1048576")
      .Write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "150000")
      .Write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000");
  const CgroupLimits l = ReadCgroupLimits(root.path());
  EXPECT_EQ(l.memory_limit_bytes, int64_t{2} << 30);
  EXPECT_EQ(l.memory_usage_bytes, 1 << 20);
  EXPECT_DOUBLE_EQ(l.cpus, 1.5);
}

TEST(CgroupLimitsTest, V1WithoutLimits) {
  FakeRoot root;
  root.Write("proc/self/cgroup", "4:memory:/\n1:cpu:/")
      .Write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712")
      .Write("sys/fs/cgroup/memory/memory.usage_in_bytes", "5")
      .Write("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1")
      .Write("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000");
  const CgroupLimits l = ReadCgroupLimits(root.path());
  EXPECT_EQ(l.memory_limit_bytes, -1);
  EXPECT_EQ(l.cpus, -1);
}

TEST(CgroupLimitsTest, NoCgroupFilesMeansUnknown) {
  FakeRoot root;
  root.Write("proc/self/cgroup", "");
  const CgroupLimits l = ReadCgroupLimits(root.path());
  EXPECT_EQ(l.memory_limit_bytes, -1);
  EXPECT_EQ(l.memory_usage_bytes, -1);
  EXPECT_EQ(l.cpus, -1);
  EXPECT_GT(AvailableMemoryBytes(), 0);  // this machine's, whatever its cgroup
}

}  // namespace
}  // namespace retrain
