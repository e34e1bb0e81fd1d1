// A dataset build and then a training job over two workers while workers,
// trainer processes and the coordinator are SIGKILLed and restarted at
// random moments; again with the state in PostgreSQL and two coordinators,
// either of which may be killed. The moments and victims come from a seed
// (RETRAIN_CHAOS_SEED, printed), so a failing schedule can be replayed.
// At the end: both jobs succeeded, every good image is in exactly one
// shard, training reached its step count, and no temporary or partial file
// is left.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "common/job_states.h"
#include "tests/integration/build_fixtures.h"
#include "tests/support/cluster.h"
#include "tests/support/postgres_server.h"
#include "tests/support/test_images.h"

namespace retrain::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;
using ::testing::IsEmpty;

// Processes below any of `roots` (children, grandchildren, ...) whose
// command name is `comm`.
std::vector<pid_t> DescendantsNamed(const std::set<pid_t>& roots, const std::string& comm) {
  std::map<pid_t, std::pair<pid_t, std::string>> procs;  // pid -> (ppid, comm)
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = ReadAll(e.path().string() + "/stat");
    const size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    pid_t ppid;
    rest >> state >> ppid;
    procs[std::stoi(name)] = {ppid, stat.substr(open + 1, close - open - 1)};
  }
  std::vector<pid_t> found;
  for (const auto& [pid, info] : procs) {
    if (info.second != comm) continue;
    for (pid_t up = info.first; up > 1 && procs.count(up); up = procs[up].first) {
      if (roots.count(up)) {
        found.push_back(pid);
        break;
      }
    }
  }
  return found;
}

int64_t NewestCheckpointStep(const std::string& train_dir) {
  int64_t best = -1;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(train_dir, ec)) {
    const std::string name = f.path().filename().string();
    if (name.rfind("model.ckpt-", 0) == 0 && name.find('.', 11) == std::string::npos) {
      best = std::max<int64_t>(best, std::stoll(name.substr(11)));
    }
  }
  return best;
}

// Kills and restarts parts of a cluster on a seeded schedule, keeping
// `workers` workers alive.
class Chaos {
 public:
  Chaos(Cluster& cluster, uint32_t seed, int workers) : cluster_(cluster), rng_(seed) {
    for (int i = 0; i < workers; ++i) Restart();
  }

  enum class Kind { kWorker, kTrainer, kCoordinator };

  // `count` kinds to strike: each of `kinds` once in a random order, then
  // random ones.
  std::vector<Kind> Schedule(std::vector<Kind> kinds, int count) {
    std::shuffle(kinds.begin(), kinds.end(), rng_);
    std::vector<Kind> out = kinds;
    while (static_cast<int>(out.size()) < count) {
      out.push_back(kinds[Uniform(0, static_cast<int>(kinds.size()) - 1)]);
    }
    return out;
  }

  // Waits a random 0.3-`max_wait_ms` ms, then kills one `kind` (a trainer
  // only when one runs: false otherwise). Logs what it did.
  bool Strike(Kind kind, int max_wait_ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(Uniform(300, max_wait_ms)));
    if (kind == Kind::kCoordinator && cluster_.coordinators() > 1) {
      // Any of them: the leader (a standby takes over) or a standby.
      const int i = Uniform(0, cluster_.coordinators() - 1);
      const bool led = cluster_.WaitForLeader(std::chrono::seconds(0)) == i;
      cluster_.KillCoordinator(i, SIGKILL);
      const int down_ms = Uniform(0, 1500);
      std::this_thread::sleep_for(std::chrono::milliseconds(down_ms));
      cluster_.StartCoordinator(i);
      Log("killed coordinator " + std::to_string(i) + (led ? " (the leader)" : " (a standby)") +
          "; restarted it after " + std::to_string(down_ms) + " ms");
      return true;
    }
    if (kind == Kind::kCoordinator) {
      const int port = cluster_.port();
      cluster_.KillServer(SIGKILL);
      const int down_ms = Uniform(0, 1500);
      std::this_thread::sleep_for(std::chrono::milliseconds(down_ms));
      cluster_.StartServer(port);
      Log("killed the coordinator; restarted it after " + std::to_string(down_ms) + " ms");
      return true;
    }
    if (kind == Kind::kTrainer) {
      std::set<pid_t> roots;
      for (auto* w : alive_) roots.insert(w->pid());
      const auto trainers = DescendantsNamed(roots, "retrain-trainer");
      if (trainers.empty()) return false;
      const pid_t victim = trainers[Uniform(0, static_cast<int>(trainers.size()) - 1)];
      kill(victim, SIGKILL);
      Log("killed trainer process " + std::to_string(victim));
      return true;
    }
    const size_t i = Uniform(0, static_cast<int>(alive_.size()) - 1);
    Process* victim = alive_[i];
    victim->Signal(SIGKILL);
    victim->Wait();
    alive_.erase(alive_.begin() + static_cast<long>(i));
    Restart();
    Log("killed worker " + std::to_string(victim->pid()) + "; started another");
    return true;
  }

  int strikes() const { return strikes_; }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  void Restart() { alive_.push_back(&cluster_.StartWorker(1)); }
  void Log(const std::string& what) {
    ++strikes_;
    std::cout << "[chaos] " << what << std::endl;
  }

  Cluster& cluster_;
  std::mt19937 rng_;
  std::vector<Process*> alive_;
  int strikes_ = 0;
};

// The whole schedule; with `postgres`, the state is in a PostgreSQL server
// shared by two coordinators, and a coordinator kill strikes either one.
void BuildAndTrainUnderChaos(bool postgres) {
  const char* env = std::getenv("RETRAIN_CHAOS_SEED");
  const uint32_t seed = env ? static_cast<uint32_t>(std::stoul(env)) : 20261202u;
  std::cout << "[chaos] seed " << seed << " (replay: RETRAIN_CHAOS_SEED=" << seed << ")"
            << std::endl;
  ::testing::Test::RecordProperty("chaos_seed", std::to_string(seed));
  TempDir dir;
  // Enough images that the build lasts through its kills (a few seconds).
  const Tree tree = WriteImages(dir.path(), {"a", "b", "c"}, 240, 20, 400, 300);
  // Two bad files, skipped and reported whatever happens around them.
  const std::string half = test_images::MakeJpeg(400, 300, 90, 999);
  test_images::WriteFile(dir.path() + "/data/train/a/truncated.jpg", half.substr(0, half.size() / 2));
  test_images::WriteFile(dir.path() + "/data/train/b/notes.jpg", "not an image\n");
  ClusterOptions options;
  options.lease_timeout_ms = 2000;
  options.heartbeat_interval_ms = 200;
  // Every kill of a worker or trainer that holds a task uses up one lease.
  options.server_args = {"--max_task_attempts", "30"};
  std::unique_ptr<PostgresServer> database;
  if (postgres) {
    database = std::make_unique<PostgresServer>();
    ASSERT_TRUE(database->ok());
    options.state_db = database->uri();
    options.state_db_password_file = database->password_file();
    options.coordinators = 2;
  }
  Cluster cluster(dir.path(), options);
  cluster.StartServer();
  Chaos chaos(cluster, seed, 3);

  const std::string out = dir.path() + "/data-out";
  v1::Job build = Submit(cluster, BuildRequest(dir.path(), out, 8, 2));
  ASSERT_FALSE(build.id().empty());
  // A worker first: killing one is quick, and the coordinator's restart
  // after it still finds the build running.
  std::vector<Chaos::Kind> build_kills = {Chaos::Kind::kWorker, Chaos::Kind::kCoordinator};
  for (Chaos::Kind kind : chaos.Schedule({Chaos::Kind::kWorker, Chaos::Kind::kCoordinator}, 2)) {
    build_kills.push_back(kind);
  }
  for (Chaos::Kind kind : build_kills) {
    if (cluster.JobEnded(build.id())) break;
    chaos.Strike(kind, 700);
  }
  const int build_strikes = chaos.strikes();
  EXPECT_GE(build_strikes, 2) << "the build ended before a worker and the coordinator were killed";
  build = cluster.WaitForEnd(build.id(), std::chrono::seconds(300));
  ASSERT_EQ(build.state(), v1::JOB_STATE_SUCCEEDED) << build.DebugString();
  DatasetView view = ReadDataset(out);
  ExpectEachImageOnce(view, tree);
  std::set<std::string> skipped;
  for (const auto& s : build.dataset_build_result().skipped()) {
    skipped.insert(s.split() + "/" + s.path());
  }
  EXPECT_EQ(skipped, (std::set<std::string>{"train/a/truncated.jpg", "train/b/notes.jpg"}));
  EXPECT_THAT(HiddenOrForeignFiles(out), IsEmpty());

  // Training over two workers, one CPU rank each, checkpointing often; long
  // enough that every kind of kill strikes before it ends, also when a
  // trainer is between runs for several tries.
  constexpr int kTrainingSteps = 300;
  v1::SubmitTrainingRequest train;
  auto* spec = train.mutable_spec();
  spec->set_data_dir(out);
  spec->set_train_dir(dir.path() + "/run");
  spec->set_model("small");
  spec->set_augmentation("none");
  spec->set_batch_size(64);
  spec->set_max_steps(kTrainingSteps);
  spec->set_input_queue_memory_factor(1);
  spec->set_num_preprocess_threads(1);
  spec->set_checkpoint_every_steps(10);
  spec->set_num_workers(2);
  spec->set_seed(7);
  v1::Job job;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(cluster.jobs().SubmitTraining(&ctx, train, &job).ok());
  }
  cluster.WaitForJob(job.id(), [&](const v1::Job& j) {
    return IsFinalState(j.state()) || NewestCheckpointStep(spec->train_dir()) >= 10;
  }, std::chrono::seconds(300));
  for (Chaos::Kind kind : chaos.Schedule(
           {Chaos::Kind::kWorker, Chaos::Kind::kTrainer, Chaos::Kind::kCoordinator}, 6)) {
    if (cluster.JobEnded(job.id())) break;
    // A trainer may be between runs (restarting after the last kill).
    for (int tries = 0; tries < 10 && !chaos.Strike(kind, 3000);) ++tries;
  }
  EXPECT_GE(chaos.strikes(), build_strikes + 3) << "training ended before each kind of kill";
  job = cluster.WaitForEnd(job.id(), std::chrono::seconds(600));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.DebugString() << cluster.ServerLog();
  EXPECT_EQ(job.training_result().steps(), kTrainingSteps);
  EXPECT_EQ(NewestCheckpointStep(spec->train_dir()), kTrainingSteps);
  EXPECT_EQ(job.training_result().evaluation().num_examples(),
            view.manifest["splits"]["validation"]["num_records"].get<int64_t>());
  EXPECT_THAT(HiddenOrForeignFiles(spec->train_dir()), IsEmpty());
  for (const auto& e : fs::directory_iterator(spec->train_dir())) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
  std::cout << "[chaos] " << chaos.strikes() << " kills; training restarts "
            << job.training_result().restarts() << std::endl;
}

TEST(ChaosTest, BuildAndTrainSurviveRandomKills) { BuildAndTrainUnderChaos(false); }

TEST(ChaosTest, BuildAndTrainSurviveRandomKillsOfCoordinatorsSharingPostgres) {
  BuildAndTrainUnderChaos(true);
}

}  // namespace
}  // namespace retrain::testing
