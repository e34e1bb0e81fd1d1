// Coordinators sharing a real PostgreSQL server: one leads, the others
// stand by, and the service rides out the loss of the leader, of its link
// to the database and of the database itself. Every test starts the real
// binaries and a real PostgreSQL server.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>
#include <thread>

#include "common/grpc_status.h"
#include "common/job_states.h"
#include "tests/integration/build_fixtures.h"
#include "tests/integration/dataset_check.h"
#include "tests/support/cluster.h"
#include "tests/support/postgres_server.h"
#include "tests/support/tcp_proxy.h"

namespace retrain::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

class FailoverTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(postgres_.ok()); }

  ClusterOptions Coordinators(int n) {
    ClusterOptions options;
    options.state_db = postgres_.uri();
    options.state_db_password_file = postgres_.password_file();
    options.coordinators = n;
    return options;
  }
  const std::string& root() { return dir_.path(); }

  // How many coordinators answer as the leader right now.
  int Leaders(Cluster& cluster, int n) {
    int leaders = 0;
    for (int i = 0; i < n; ++i) {
      if (cluster.coordinator(i).Running()) {
        auto stub = v1::JobService::NewStub(
            grpc::CreateChannel("127.0.0.1:" + std::to_string(cluster.coordinator_port(i)),
                                grpc::InsecureChannelCredentials()));
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
        v1::ListWorkersRequest req;
        v1::ListWorkersResponse resp;
        const grpc::Status s = stub->ListWorkers(&ctx, req, &resp);
        if (s.ok()) {
          ++leaders;
        } else {
          EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
          EXPECT_THAT(s.error_message(), ::testing::HasSubstr("standing by"));
        }
      }
    }
    return leaders;
  }

  // Kills the leader and returns how long until another one leads.
  milliseconds KillLeader(Cluster& cluster, int* old_leader, int* new_leader) {
    *old_leader = cluster.WaitForLeader();
    EXPECT_GE(*old_leader, 0);
    const auto killed = steady_clock::now();
    cluster.KillCoordinator(*old_leader, SIGKILL);
    *new_leader = cluster.WaitForLeader();
    const auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - killed);
    EXPECT_GE(*new_leader, 0) << cluster.ServerLog();
    EXPECT_NE(*new_leader, *old_leader);
    std::cout << "failover: a standby led " << took.count() << " ms after the leader was killed\n";
    return took;
  }

  PostgresServer postgres_;
  TempDir dir_;
};

TEST_F(FailoverTest, OfThreeCoordinatorsStartedAtOnceOnAnEmptyDatabaseExactlyOneLeads) {
  Cluster cluster(root(), Coordinators(3));
  cluster.StartServer();
  for (int look = 0; look < 5; ++look) {
    EXPECT_EQ(Leaders(cluster, 3), 1);
    std::this_thread::sleep_for(milliseconds(300));
  }
  const int leader = cluster.WaitForLeader();
  EXPECT_EQ(postgres_.Sql("SELECT holder FROM leader"),
            "127.0.0.1:" + std::to_string(cluster.coordinator_port(leader)) + "\n");
  // The CLI, given all three, reaches the leader.
  CommandResult r = cluster.Cli({"workers"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(FailoverTest, ALeaderKilledMidBuildIsReplacedAndTheBuildKeepsItsShards) {
  Tree tree = WriteImages(root(), {"a", "b", "c"}, 80, 20, 400, 300);
  Cluster cluster(root(), Coordinators(2));
  cluster.StartServer();
  cluster.StartWorker(1);
  const std::string out = root() + "/out";
  v1::Job job = Submit(cluster, BuildRequest(root(), out, 12, 2));
  job = WaitUntilAShardIsWritten(cluster, job.id());
  std::set<std::string> before;
  for (const auto& e : fs::directory_iterator(out)) {
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') {
      before.insert(e.path().filename().string());
    }
  }
  int old_leader = -1, new_leader = -1;
  KillLeader(cluster, &old_leader, &new_leader);
  job = cluster.WaitForEnd(job.id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error() << cluster.ServerLog();
  ASSERT_FALSE(before.empty());
  DatasetView view = ReadDataset(out);
  ExpectEachImageOnce(view, tree);
  // The killed coordinator comes back as a standby.
  cluster.StartCoordinator(old_leader);
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(Leaders(cluster, 2), 1);
  EXPECT_EQ(cluster.WaitForLeader(), new_leader);
}

TEST_F(FailoverTest, ALeaderCutOffFromTheDatabaseStepsDownAndItsStandbyTakesOver) {
  // Coordinator 0 reaches PostgreSQL through a proxy the test can cut,
  // coordinator 1 directly.
  TcpProxy link(postgres_.port());
  ClusterOptions options = Coordinators(2);
  options.state_db_of = {"postgresql://retrain@127.0.0.1:" + std::to_string(link.port()) +
                         "/retrain"};
  WriteImages(root(), {"a", "b"}, 10, 4);
  Cluster cluster(root(), options);
  cluster.StartServer();
  if (cluster.WaitForLeader() == 1) {
    // A clean stop ends the lease at once: coordinator 0 takes over.
    cluster.KillCoordinator(1, SIGTERM);
    cluster.StartCoordinator(1);
  }
  ASSERT_EQ(cluster.WaitForLeader(), 0);
  // A job the first leader admits and persists.
  v1::Job job = Submit(cluster, BuildRequest(root(), root() + "/out"));

  const auto cut = steady_clock::now();
  link.Cut();
  // The old leader stops acting before its lease could end (the lease was
  // last renewed before the cut): it starts again as a standby, its process
  // staying, and the other one takes over.
  milliseconds stepped_down(-1);
  while (steady_clock::now() - cut < std::chrono::seconds(30)) {
    if (cluster.ServerLog().find("no longer leading") != std::string::npos) {
      stepped_down = std::chrono::duration_cast<milliseconds>(steady_clock::now() - cut);
      break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  std::cout << "the cut-off leader stepped down " << stepped_down.count()
            << " ms after the cut (lease " << options.leader_lease_ms << " ms)\n";
  EXPECT_GE(stepped_down.count(), 0) << cluster.ServerLog();
  EXPECT_LT(stepped_down.count(), options.leader_lease_ms);
  int leader = -1;
  while (steady_clock::now() - cut < std::chrono::seconds(60) && leader != 1) {
    leader = cluster.WaitForLeader();
  }
  ASSERT_EQ(leader, 1) << cluster.ServerLog();
  const auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - cut);
  std::cout << "failover: the standby led " << took.count()
            << " ms after the leader's link to the database was cut\n";
  EXPECT_TRUE(cluster.coordinator(0).Running());
  link.Heal();
  std::this_thread::sleep_for(milliseconds(2000));
  EXPECT_EQ(Leaders(cluster, 2), 1);
  EXPECT_EQ(cluster.WaitForLeader(), 1) << "the old leader must stand by after the link heals";
  // The job the old leader admitted is the new leader's now, and finishes.
  cluster.StartWorker(1);
  job = cluster.WaitForEnd(job.id());
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error() << cluster.ServerLog();
}

TEST_F(FailoverTest, APostgresRestartUnderLoadLosesNoJobAndAnswersNoInternalError) {
  WriteImages(root(), {"a", "b"}, 4, 2);
  Cluster cluster(root(), Coordinators(1));
  cluster.StartServer();
  cluster.StartWorker(1);
  std::atomic<bool> done{false};
  std::vector<std::string> admitted;
  std::vector<std::string> errors;
  // A submission every 100 ms (as many as the one worker can build while
  // the test lasts), retried through the restart.
  std::thread load([&] {
    for (int i = 0; !done; ++i, std::this_thread::sleep_for(milliseconds(100))) {
      v1::SubmitDatasetBuildRequest req =
          BuildRequest(root(), root() + "/out-" + std::to_string(i));
      req.set_request_id("load-" + std::to_string(i));
      // A client retries a call no coordinator answered with the same
      // request id, as the CLI does.
      for (int attempt = 0; attempt < 100; ++attempt) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        v1::Job job;
        const grpc::Status s = cluster.jobs().SubmitDatasetBuild(&ctx, req, &job);
        if (s.ok()) {
          admitted.push_back(job.id());
          break;
        }
        if (!retrain::CoordinatorWentAway(s)) {
          errors.push_back(std::to_string(s.error_code()) + ": " + s.error_message());
          break;
        }
        std::this_thread::sleep_for(milliseconds(100));
      }
    }
  });
  std::this_thread::sleep_for(milliseconds(1500));
  postgres_.Kill();
  std::this_thread::sleep_for(milliseconds(1000));
  postgres_.Start();
  std::this_thread::sleep_for(milliseconds(1500));
  done = true;
  load.join();
  EXPECT_THAT(errors, ::testing::IsEmpty()) << cluster.ServerLog();
  ASSERT_GT(admitted.size(), 2u);
  std::cout << admitted.size() << " jobs admitted" << std::endl;
  // Every admitted job is known after the restart, and each finishes.
  for (const auto& id : admitted) {
    v1::Job job = cluster.WaitForEnd(id, std::chrono::seconds(60));
    EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << id << ": " << job.error();
  }
}

TEST_F(FailoverTest, SqliteStateMigratesIntoPostgresWithItsJobsAndLogs) {
  WriteImages(root(), {"a", "b"}, 4, 2);
  std::string job_id;
  {
    Cluster sqlite(root());
    sqlite.StartServer();
    sqlite.StartWorker(1);
    v1::Job job = Submit(sqlite, BuildRequest(root(), root() + "/out"));
    job_id = job.id();
    ASSERT_EQ(sqlite.WaitForEnd(job_id).state(), v1::JOB_STATE_SUCCEEDED);
  }
  CommandResult r = RunCommand({BinDir() + "/retrain-server", "--state_db", postgres_.uri(),
                                "--state_db_password_file", postgres_.password_file(),
                                "--migrate_from_sqlite", root() + "/state"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_THAT(r.out + r.err, ::testing::HasSubstr("copied 1 jobs"));
  // Again: refused, the database is no longer empty.
  r = RunCommand({BinDir() + "/retrain-server", "--state_db", postgres_.uri(),
                  "--state_db_password_file", postgres_.password_file(), "--migrate_from_sqlite",
                  root() + "/state"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("already holds"));

  Cluster cluster(root(), Coordinators(1));
  cluster.StartServer();
  r = cluster.Cli({"status", job_id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::HasSubstr("SUCCEEDED"));
  // The next job continues the numbering.
  v1::Job next = Submit(cluster, BuildRequest(root(), root() + "/out2"));
  EXPECT_GT(next.id(), job_id);
}

}  // namespace
}  // namespace retrain::testing
