// Data-parallel training with the real binary: ranks as processes, Gloo on
// loopback and between network namespaces. Synchronous averaging, several
// launchers ("hosts"), dead and hung ranks, uneven shards.
#include <arpa/inet.h>
#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/support/process.h"
#include "tests/support/two_host_network.h"
#include "tests/trainer/input/test_dataset.h"
#include "trainer/checkpoint.h"
#include "trainer/distributed/local_address.h"
#include "trainer/nn/model.h"

namespace retrain::trainer {
namespace {

using retrain::testing::BinDir;
using retrain::testing::CommandResult;
using retrain::testing::Eventually;
using retrain::testing::FreePort;
using retrain::testing::Process;
using retrain::testing::ReadAll;
using retrain::testing::RunCommand;
using testing::DatasetSpec;
using ::testing::HasSubstr;
using testing::MakeTempDir;
using testing::WriteDataset;

std::string Dataset(const std::string& name, std::vector<int> shard_sizes) {
  const std::string dir = MakeTempDir(name);
  DatasetSpec spec;
  spec.num_labels = 3;
  int total = 0;
  for (int n : shard_sizes) total += n;
  testing::SplitSpec train{"train", total, static_cast<int>(shard_sizes.size()), 40, 40, false, 90};
  train.shard_sizes = shard_sizes;
  spec.splits = {train, {"validation", 6, 1, 40, 40, false, 90}};
  WriteDataset(dir, spec);
  return dir;
}

// A run whose batches are a pure function of the data: no shuffle buffer,
// one reader, no distortions, a model without batch norm or dropout.
std::vector<std::string> TrainArgs(const std::string& data, const std::string& train_dir,
                                   int batch_size, int steps) {
  return {BinDir() + "/retrain-trainer",
          "train",
          "--data_dir", data,
          "--train_dir", train_dir,
          "--model", "linear",
          "--batch_size", std::to_string(batch_size),
          "--max_steps", std::to_string(steps),
          "--image_size", "32",
          "--augmentation", "none",
          "--input_queue_memory_factor", "0",
          "--num_readers", "1",
          "--num_preprocess_threads", "1",
          "--num_intra_op_threads", "1",
          "--initial_learning_rate", "0.05",
          "--seed", "5"};
}

std::vector<std::string> With(std::vector<std::string> args, std::vector<std::string> more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::vector<torch::Tensor> Weights(const std::string& train_dir) {
  CheckpointManager checkpoints(train_dir, 5);
  const auto latest = checkpoints.Latest();
  if (!latest) {
    ADD_FAILURE() << "no checkpoint in " << train_dir;
    return {};
  }
  const CheckpointMeta meta = ReadCheckpointMeta(*latest);
  ModelPtr model = CreateModel(meta.model, static_cast<int>(meta.num_classes));
  RestoreCheckpoint(*latest, *model, nullptr, nullptr);
  std::vector<torch::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach().clone());
  return out;
}

bool SameWeights(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.empty() || a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::allclose(a[i], b[i], /*rtol=*/1e-4, /*atol=*/1e-6)) return false;
  }
  return true;
}

// The child of `parent` whose environment says RETRAIN_RANK=<rank>.
pid_t RankPid(pid_t parent, int rank) {
  DIR* proc = opendir("/proc");
  pid_t found = -1;
  while (dirent* e = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    // /proc/<pid>/stat: "pid (comm) state ppid ..."
    const std::string line = ReadAll("/proc/" + std::to_string(pid) + "/stat");
    pid_t ppid = 0;
    const auto close_paren = line.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream rest(line.substr(close_paren + 2));
    char state = 0;
    rest >> state >> ppid;
    if (ppid != parent) continue;
    const std::string env = ReadAll("/proc/" + std::to_string(pid) + "/environ");
    const std::string want = "RETRAIN_RANK=" + std::to_string(rank);
    if (env.find(std::string("\0", 1) + want + std::string("\0", 1)) != std::string::npos ||
        env.rfind(want + std::string("\0", 1), 0) == 0) {
      found = pid;
    }
  }
  closedir(proc);
  return found;
}

TEST(DistributedTest, TwoReplicasOfHalfTheBatchEndWhereOneReplicaOfTheWholeBatchDoes) {
  const std::string data = Dataset("equivalence", {40, 24});
  const std::string one = MakeTempDir("one-rank"), two = MakeTempDir("two-ranks");
  const std::string half = MakeTempDir("half-batch");
  const CommandResult a = RunCommand(TrainArgs(data, one, 8, 12));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const CommandResult b = RunCommand(With(TrainArgs(data, two, 8, 12), {"--num_replicas", "2"}));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_THAT(b.err, HasSubstr("rank 0 of 2 (gloo): 4 examples per rank and step"));
  EXPECT_TRUE(SameWeights(Weights(one), Weights(two)));
  // The comparison can tell runs apart: one rank of half the batch differs.
  const CommandResult c = RunCommand(TrainArgs(data, half, 4, 12));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_FALSE(SameWeights(Weights(one), Weights(half)));
}

TEST(DistributedTest, SynchronisedBatchNormTrainsOverTwoRanks) {
  const std::string data = Dataset("sync-bn", {24, 24});
  const std::string dir = MakeTempDir("sync-bn-run");
  std::vector<std::string> args = TrainArgs(data, dir, 8, 6);
  args[std::find(args.begin(), args.end(), "--model") - args.begin() + 1] = "small";
  const CommandResult r = RunCommand(With(args, {"--num_replicas", "2", "--sync_batch_norm"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("batch norm synchronised over the 2 ranks (4 layers)"));
  EXPECT_EQ(ReadCheckpointMeta(*CheckpointManager(dir, 5).Latest()).step, 6);
}

TEST(DistributedTest, TwoLaunchersOnLoopbackTrainAsOneJob) {
  const std::string data = Dataset("two-hosts", {40, 24});
  const std::string host0 = MakeTempDir("host0"), host1 = MakeTempDir("host1");
  const std::string single = MakeTempDir("single-host");
  const std::string port = std::to_string(FreePort());
  auto node = [&](const std::string& dir, const std::string& node_rank) {
    return With(TrainArgs(data, dir, 8, 12),
                {"--num_replicas", "1", "--nnodes", "2", "--node_rank", node_rank, "--master_addr",
                 "127.0.0.1", "--master_port", port});
  };
  auto second = Process::Start(node(host1, "1"), host1 + "/launcher.log");
  const CommandResult first = RunCommand(node(host0, "0"));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(second->Wait(), 0) << ReadAll(host1 + "/launcher.log");
  // Only rank 0 writes checkpoints; the job equals one rank of the whole batch.
  EXPECT_FALSE(CheckpointManager(host1, 5).Latest().has_value());
  ASSERT_EQ(RunCommand(TrainArgs(data, single, 8, 12)).exit_code, 0);
  EXPECT_TRUE(SameWeights(Weights(host0), Weights(single)));
}

// Two hosts with addresses of their own (network namespaces), sharing the
// machine's name, which resolves to loopback or to an address outside both:
// each rank must bind and announce the address the other host reaches it at.
TEST(DistributedTest, TwoHostsOnANetworkTrainAsOneJob) {
  const retrain::testing::TwoHostNetwork network;
  if (!network.ok()) GTEST_SKIP() << network.error() << " (needs root and iproute2)";
  const std::string data = Dataset("network-hosts", {40, 24});
  const std::string host0 = MakeTempDir("network-host0"), host1 = MakeTempDir("network-host1");
  const std::string single = MakeTempDir("network-single-host");
  const std::string port = std::to_string(FreePort());
  auto node = [&](int host, const std::string& dir) {
    return network.On(host, With(TrainArgs(data, dir, 8, 12),
                                 {"--num_replicas", "1", "--nnodes", "2", "--node_rank",
                                  std::to_string(host), "--master_addr", network.address(0),
                                  "--master_port", port, "--collective_timeout_secs", "60"}));
  };
  auto second = Process::Start(node(1, host1), host1 + "/launcher.log");
  const CommandResult first = RunCommand(node(0, host0));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(second->Wait(), 0) << ReadAll(host1 + "/launcher.log");
  ASSERT_EQ(RunCommand(TrainArgs(data, single, 8, 12)).exit_code, 0);
  EXPECT_TRUE(SameWeights(Weights(host0), Weights(single)));
}

TEST(LocalAddressTest, TowardLoopbackIsLoopback) {
  EXPECT_EQ(LocalAddressToward("127.0.0.1"), "127.0.0.1");
}

TEST(LocalAddressTest, TowardAnAddressOfThisHostIsThatAddress) {
  ifaddrs* list = nullptr;
  ASSERT_EQ(getifaddrs(&list), 0);
  std::string own;
  for (const ifaddrs* i = list; i != nullptr && own.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    if ((i->ifa_flags & IFF_UP) == 0 || (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, text,
              sizeof text);
    own = text;
  }
  freeifaddrs(list);
  if (own.empty()) GTEST_SKIP() << "this host has no IPv4 address but loopback";
  EXPECT_EQ(LocalAddressToward(own), own);
}

TEST(DistributedTest, AKilledRankStopsTheJobAndIsNamed) {
  const std::string data = Dataset("killed-rank", {40, 24});
  const std::string dir = MakeTempDir("killed-rank-run");
  auto launcher = Process::Start(
      With(TrainArgs(data, dir, 8, 1000000), {"--num_replicas", "2", "--log_every_steps", "5"}),
      dir + "/launcher.log");
  ASSERT_TRUE(Eventually(
      [&] { return ReadAll(dir + "/launcher.log").find("\"step\":10") != std::string::npos; },
      std::chrono::seconds(60)))
      << ReadAll(dir + "/launcher.log");
  const pid_t rank0 = RankPid(launcher->pid(), 0), rank1 = RankPid(launcher->pid(), 1);
  ASSERT_GT(rank0, 0);
  ASSERT_GT(rank1, 0);
  kill(rank1, SIGKILL);
  ASSERT_TRUE(Eventually([&] { return !launcher->Running(); }, std::chrono::seconds(30)))
      << "the launcher did not stop after rank 1 died";
  EXPECT_EQ(launcher->Wait(), 128 + SIGKILL);
  EXPECT_THAT(ReadAll(dir + "/launcher.log"),
              HasSubstr("rank 1 of 2 (pid " + std::to_string(rank1) + ") was killed by signal 9"));
  EXPECT_NE(kill(rank0, 0), 0) << "rank 0 outlived the job";
}

TEST(DistributedTest, AHungRankTimesOutTheOthers) {
  const std::string data = Dataset("hung-rank", {40, 24});
  const std::string dir = MakeTempDir("hung-rank-run");
  auto launcher = Process::Start(
      With(TrainArgs(data, dir, 8, 1000000),
           {"--num_replicas", "2", "--log_every_steps", "5", "--collective_timeout_secs", "3",
            "--stop_grace_secs", "2"}),
      dir + "/launcher.log");
  ASSERT_TRUE(Eventually(
      [&] { return ReadAll(dir + "/launcher.log").find("\"step\":10") != std::string::npos; },
      std::chrono::seconds(60)));
  const pid_t rank1 = RankPid(launcher->pid(), 1);
  ASSERT_GT(rank1, 0);
  kill(rank1, SIGSTOP);  // alive, but never answers again
  ASSERT_TRUE(Eventually([&] { return !launcher->Running(); }, std::chrono::seconds(30)))
      << "the job hung with a stopped rank";
  EXPECT_NE(launcher->Wait(), 0);
  const std::string log = ReadAll(dir + "/launcher.log");
  EXPECT_THAT(log, HasSubstr("rank 0 of 2"));
  EXPECT_THAT(log, HasSubstr("rank 1 of 2 (pid " + std::to_string(rank1) +
                             ") was stopped by the launcher"));
  EXPECT_NE(kill(rank1, 0), 0) << "the hung rank outlived the job";
}

TEST(DistributedTest, UnevenShardsFinishEveryEpochOnEveryRank) {
  // 33 records in shards of 30 and 3: each rank gets 16 a epoch.
  const std::string data = Dataset("uneven", {30, 3});
  const std::string dir = MakeTempDir("uneven-run");
  // --max_steps 0: the step count comes from --num_epochs.
  const CommandResult r = RunCommand(
      With(TrainArgs(data, dir, 4, 0), {"--num_epochs", "3", "--num_replicas", "2"}),
      std::chrono::seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  CheckpointManager checkpoints(dir, 5);
  ASSERT_TRUE(checkpoints.Latest().has_value());
  EXPECT_EQ(ReadCheckpointMeta(*checkpoints.Latest()).step, 25);  // ceil(3 * 33 / 4)
}

TEST(DistributedTest, ABatchThatDoesNotSplitIsRefusedOnce) {
  const std::string data = Dataset("odd-batch", {10});
  const CommandResult r = RunCommand(
      With(TrainArgs(data, MakeTempDir("odd-batch-run"), 9, 5), {"--num_replicas", "2"}));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--batch_size 9 does not divide among 2 ranks"));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("started ranks")));
}

}  // namespace
}  // namespace retrain::trainer
