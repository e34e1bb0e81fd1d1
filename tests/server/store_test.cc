// Every Store test runs against both stores: SQLite in a temporary
// directory, and a real PostgreSQL server started for the suite.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "server/postgres_store.h"
#include "server/sqlite_store.h"
#include "server/store_copy.h"
#include "tests/support/postgres_server.h"
#include "tests/support/process.h"

namespace retrain::server {
namespace {

enum class StoreKind { kSqlite, kPostgres };

std::string KindName(const ::testing::TestParamInfo<StoreKind>& info) {
  return info.param == StoreKind::kSqlite ? "Sqlite" : "Postgres";
}

// One PostgreSQL server for the suite; one database per test.
class StoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  static void SetUpTestSuite() {}
  static void TearDownTestSuite() {
    delete postgres_;
    postgres_ = nullptr;
  }
  static retrain::testing::PostgresServer& Postgres() {
    if (postgres_ == nullptr) postgres_ = new retrain::testing::PostgresServer();
    return *postgres_;
  }

  void SetUp() override {
    if (GetParam() == StoreKind::kPostgres) {
      ASSERT_TRUE(Postgres().ok());
      database_ = "store_test_" + std::to_string(++databases_);
      uri_ = Postgres().NewDatabase(database_);
    }
  }

  // Opens the store under test: the same database each time.
  absl::StatusOr<std::unique_ptr<Store>> TryOpen(int64_t leader_epoch = 0) {
    if (GetParam() == StoreKind::kSqlite) return SqliteStore::Open(dir_.path() + "/state");
    PostgresStoreOptions options;
    options.uri = uri_;
    options.password = Postgres().password();
    options.leader_epoch = leader_epoch;
    options.reconnect_ms = 20000;
    return PostgresStore::Open(options);
  }
  std::unique_ptr<Store> Open(int64_t leader_epoch = 0) {
    auto store = TryOpen(leader_epoch);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Runs SQL on the test's PostgreSQL database, or on the SQLite file.
  void Sql(const std::string& sql) {
    if (GetParam() == StoreKind::kPostgres) {
      Postgres().Sql(sql, database_);
      return;
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_.path() + "/state/retrain.db").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  retrain::testing::TempDir dir_;
  std::string database_;
  std::string uri_;
  static inline retrain::testing::PostgresServer* postgres_ = nullptr;
  static inline int databases_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest,
                         ::testing::Values(StoreKind::kSqlite, StoreKind::kPostgres), KindName);

TEST_P(StoreTest, WhatWasCommittedIsLoadedAfterReopening) {
  v1::Job job;
  job.set_id("j-000007");
  job.set_state(v1::JOB_STATE_RUNNING);
  v1::TaskRecord task;
  task.set_id(3);
  task.set_job_id("j-000007");
  task.set_state(v1::TASK_STATE_LEASED);
  v1::BuildPlan plan;
  plan.set_files_listed(42);
  v1::Worker worker;
  worker.set_id("w-1");
  worker.set_hostname("gpu-7");
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    StoreBatch batch;
    batch.jobs.push_back(&job);
    batch.tasks.push_back(&task);
    batch.plans.emplace_back("j-000007", &plan);
    batch.workers.push_back(&worker);
    batch.counters = {{"next_task_id", 4}};
    ASSERT_TRUE(store->Commit(batch).ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto contents = store->LoadState(100);
  ASSERT_TRUE(contents.ok());
  ASSERT_EQ(contents->jobs.size(), 1u);
  EXPECT_EQ(contents->jobs[0].state(), v1::JOB_STATE_RUNNING);
  ASSERT_EQ(contents->tasks.size(), 1u);
  EXPECT_EQ(contents->tasks[0].state(), v1::TASK_STATE_LEASED);
  ASSERT_EQ(contents->plans.size(), 1u);
  EXPECT_EQ(contents->plans[0].second.files_listed(), 42);
  EXPECT_EQ(contents->counters["next_task_id"], 4);
  ASSERT_EQ(contents->workers.size(), 1u);
  EXPECT_EQ(contents->workers[0].hostname(), "gpu-7");

  // Writing a row again replaces it.
  task.set_state(v1::TASK_STATE_DONE);
  StoreBatch again;
  again.tasks.push_back(&task);
  ASSERT_TRUE(store->Commit(again).ok());
  contents = store->LoadState(100);
  ASSERT_EQ(contents->tasks.size(), 1u);
  EXPECT_EQ(contents->tasks[0].state(), v1::TASK_STATE_DONE);

  StoreBatch drop;
  drop.drop_tasks_of_jobs.push_back("j-000007");
  ASSERT_TRUE(store->Commit(drop).ok());
  contents = store->LoadState(100);
  EXPECT_TRUE(contents->tasks.empty());
  EXPECT_TRUE(contents->plans.empty());
  EXPECT_EQ(contents->jobs.size(), 1u);
}

TEST_P(StoreTest, JobsAreReadOneByOneAndNewestFirstBeforeAnId) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  // Ids past j-999999 still sort by number.
  const std::vector<std::string> ids = {"j-000001", "j-000002", "j-999999", "j-1000000",
                                        "j-1000001"};
  std::vector<v1::Job> jobs(ids.size());
  StoreBatch batch;
  for (size_t i = 0; i < ids.size(); ++i) {
    jobs[i].set_id(ids[i]);
    jobs[i].set_state(v1::JOB_STATE_SUCCEEDED);
    batch.jobs.push_back(&jobs[i]);
  }
  ASSERT_TRUE(store->Commit(batch).ok());
  auto one = store->LoadJob("j-999999");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->id(), "j-999999");
  EXPECT_EQ(store->LoadJob("j-000003").status().code(), absl::StatusCode::kNotFound);

  auto before = store->LoadJobsBefore(JobSequence("j-1000001"), 3);
  ASSERT_TRUE(before.ok()) << before.status();
  std::vector<std::string> got;
  for (const auto& j : *before) got.push_back(j.id());
  EXPECT_EQ(got, (std::vector<std::string>{"j-1000000", "j-999999", "j-000002"}));
  EXPECT_TRUE(store->LoadJobsBefore(1, 10)->empty());

  EXPECT_EQ(JobSequence("j-000042"), 42);
  EXPECT_EQ(JobSequence("j-1000000"), 1000000);
  EXPECT_EQ(JobSequence("x-1"), -1);
  EXPECT_EQ(JobSequence("j-"), -1);
  EXPECT_EQ(JobSequence("j-12a"), -1);
}

v1::Job MakeJob(const std::string& id, v1::JobType type, v1::JobState state,
                const std::string& request_id = "") {
  v1::Job job;
  job.set_id(id);
  job.set_type(type);
  job.set_state(state);
  job.set_request_id(request_id);
  return job;
}

std::vector<std::string> Ids(const std::vector<v1::Job>& jobs) {
  std::vector<std::string> ids;
  for (const auto& job : jobs) ids.push_back(job.id());
  return ids;
}

constexpr auto kBuild = v1::JOB_TYPE_DATASET_BUILD;
constexpr auto kTraining = v1::JOB_TYPE_TRAINING;

TEST_P(StoreTest, AtStartOnlyUnfinishedAndTheNewestFinishedJobsAreParsed) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<v1::Job> jobs = {
      MakeJob("j-000001", kBuild, v1::JOB_STATE_SUCCEEDED, "first"),
      MakeJob("j-000002", kTraining, v1::JOB_STATE_FAILED),
      MakeJob("j-000003", kTraining, v1::JOB_STATE_RUNNING),
      MakeJob("j-000004", kBuild, v1::JOB_STATE_CANCELLED),
      MakeJob("j-000005", kBuild, v1::JOB_STATE_SUCCEEDED),
      MakeJob("j-000006", kBuild, v1::JOB_STATE_QUEUED, "last"),
  };
  StoreBatch batch;
  for (const auto& job : jobs) batch.jobs.push_back(&job);
  ASSERT_TRUE(store->Commit(batch).ok());

  auto two = store->LoadState(2);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(Ids(two->jobs),
            (std::vector<std::string>{"j-000003", "j-000004", "j-000005", "j-000006"}));
  using Key = std::pair<v1::JobType, v1::JobState>;
  EXPECT_EQ(two->finished_not_loaded,
            (std::map<Key, int64_t>{{{kBuild, v1::JOB_STATE_SUCCEEDED}, 1},
                                    {{kTraining, v1::JOB_STATE_FAILED}, 1}}));
  EXPECT_EQ(two->newest_not_loaded_seq, 2);
  // A retried submit finds its job whether or not it was loaded.
  EXPECT_EQ(*store->FindJobIdByRequestId("first"), "j-000001");
  EXPECT_EQ(*store->FindJobIdByRequestId("last"), "j-000006");
  EXPECT_EQ(*store->FindJobIdByRequestId("never"), "");
  EXPECT_EQ(*store->FindJobIdByRequestId(""), "");

  auto none = store->LoadState(0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(Ids(none->jobs), (std::vector<std::string>{"j-000003", "j-000006"}));
  EXPECT_EQ(none->finished_not_loaded.size(), 3u);
  EXPECT_EQ(none->newest_not_loaded_seq, 5);

  auto all = store->LoadState(10);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->jobs.size(), jobs.size());
  EXPECT_TRUE(all->finished_not_loaded.empty());
  EXPECT_EQ(all->newest_not_loaded_seq, -1);

  // A job that finishes later is found by its new state.
  jobs[2].set_state(v1::JOB_STATE_SUCCEEDED);
  StoreBatch finish;
  finish.jobs.push_back(&jobs[2]);
  ASSERT_TRUE(store->Commit(finish).ok());
  none = store->LoadState(0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(Ids(none->jobs), (std::vector<std::string>{"j-000006"}));
  EXPECT_EQ((none->finished_not_loaded[{kTraining, v1::JOB_STATE_SUCCEEDED}]), 1);
}

TEST_P(StoreTest, JobLogsAreAppendedAndReadFromAnOffset) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->ReadJobLog("j-000001", 0, 10)->empty());
  ASSERT_TRUE(store->AppendJobLog("j-000001", {"step 1", "step 2"}).ok());
  ASSERT_TRUE(store->AppendJobLog("j-000002", {"other"}).ok());
  ASSERT_TRUE(store->AppendJobLog("j-000001", {"step 3", "caf\xc3\xa9 \\ 'quoted'"}).ok());
  EXPECT_THAT(*store->ReadJobLog("j-000001", 0, 10),
              ::testing::ElementsAre("step 1", "step 2", "step 3", "caf\xc3\xa9 \\ 'quoted'"));
  EXPECT_THAT(*store->ReadJobLog("j-000001", 1, 2), ::testing::ElementsAre("step 2", "step 3"));
  EXPECT_TRUE(store->ReadJobLog("j-000001", 4, 10)->empty());
  store = Open();  // and after reopening
  EXPECT_THAT(*store->ReadJobLog("j-000002", 0, 10), ::testing::ElementsAre("other"));
}

v1::TrainingPoint Point(v1::TrainingPoint::Kind kind, int64_t step, double loss = 0,
                        const std::string& checkpoint = "") {
  v1::TrainingPoint p;
  p.set_kind(kind);
  p.set_step(step);
  p.set_loss(loss);
  p.set_checkpoint(checkpoint);
  return p;
}

std::vector<int64_t> Steps(const std::vector<v1::TrainingPoint>& points) {
  std::vector<int64_t> out;
  for (const auto& p : points) out.push_back(p.step());
  return out;
}

TEST_P(StoreTest, TrainingPointsAreAppendedAndReadFromAnOffset) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->ReadTrainingPoints("j-000001", 0, 10)->empty());
  constexpr auto kStep = v1::TrainingPoint::KIND_STEP;
  ASSERT_TRUE(
      store->AppendTrainingPoints("j-000001", {Point(kStep, 10, 2.25), Point(kStep, 20, 1.5)})
          .ok());
  ASSERT_TRUE(store->AppendTrainingPoints("j-000002", {Point(kStep, 1)}).ok());
  // Checkpoint paths of any bytes, a newline among them.
  ASSERT_TRUE(
      store
          ->AppendTrainingPoints("j-000001", {Point(v1::TrainingPoint::KIND_CHECKPOINT, 20, 0,
                                                    "/runs/caf\xc3\xa9 'a'\nmodel.ckpt-20"),
                                              Point(kStep, 30, 0.75)})
          .ok());
  EXPECT_TRUE(store->AppendTrainingPoints("j-000001", {}).ok());
  auto all = store->ReadTrainingPoints("j-000001", 0, 10);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(Steps(*all), ::testing::ElementsAre(10, 20, 20, 30));
  EXPECT_DOUBLE_EQ((*all)[0].loss(), 2.25);
  EXPECT_EQ((*all)[2].kind(), v1::TrainingPoint::KIND_CHECKPOINT);
  EXPECT_EQ((*all)[2].checkpoint(), "/runs/caf\xc3\xa9 'a'\nmodel.ckpt-20");
  EXPECT_THAT(Steps(*store->ReadTrainingPoints("j-000001", 1, 2)), ::testing::ElementsAre(20, 20));
  EXPECT_TRUE(store->ReadTrainingPoints("j-000001", 4, 10)->empty());
  // Apart from the job's log.
  EXPECT_TRUE(store->ReadJobLog("j-000001", 0, 10)->empty());
  store = Open();  // and after reopening
  EXPECT_THAT(Steps(*store->ReadTrainingPoints("j-000001", 0, 10)),
              ::testing::ElementsAre(10, 20, 20, 30));
  EXPECT_THAT(Steps(*store->ReadTrainingPoints("j-000002", 0, 10)), ::testing::ElementsAre(1));
}

// Logs are read off the coordinator's lock: a reader on another thread
// sees whole lines in order while lines are appended, and all of them after.
TEST_P(StoreTest, JobLogsAreReadWholeWhileAnotherThreadAppends) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto line = [](int k) {
    return "line " + std::to_string(k) + " " + std::string(3000, static_cast<char>('a' + k % 26));
  };
  constexpr int kBatches = 60;
  std::thread writer([&] {
    for (int b = 0; b < kBatches; ++b) {
      ASSERT_TRUE(store->AppendJobLog("j-000001", {line(2 * b), line(2 * b + 1)}).ok());
      ASSERT_TRUE(store->Commit(StoreBatch()).ok());
    }
  });
  std::vector<std::string> seen;
  for (int reads = 0; seen.size() < 2 * kBatches && reads < 100000; ++reads) {
    auto lines = store->ReadJobLog("j-000001", static_cast<int64_t>(seen.size()), 7);
    ASSERT_TRUE(lines.ok()) << lines.status();
    if (lines->empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (auto& l : *lines) {
      ASSERT_EQ(l, line(static_cast<int>(seen.size())));
      seen.push_back(std::move(l));
    }
  }
  writer.join();
  EXPECT_EQ(seen.size(), 2u * kBatches);
}

TEST_P(StoreTest, ADatabaseWithANewerSchemaIsRefusedByName) {
  ASSERT_NE(Open(), nullptr);  // creates it at kStoreSchemaVersion
  Sql(GetParam() == StoreKind::kSqlite ? "PRAGMA user_version = 99"
                                       : "UPDATE retrain_schema SET version = 99");
  auto store = TryOpen();
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              ::testing::HasSubstr("schema version 99, newer than this retrain-server's"));
}

// A database of schema version 1, from before training series were kept,
// is upgraded when a coordinator opens it, keeping what it held.
TEST_P(StoreTest, ADatabaseOfVersionOneGetsTrainingSeries) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->AppendJobLog("j-000001", {"old line"}).ok());
  }
  Sql(GetParam() == StoreKind::kSqlite
          ? "PRAGMA user_version = 1"
          : "DROP TABLE job_points; UPDATE retrain_schema SET version = 1");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(
      store->AppendTrainingPoints("j-000001", {Point(v1::TrainingPoint::KIND_STEP, 10)}).ok());
  EXPECT_THAT(Steps(*store->ReadTrainingPoints("j-000001", 0, 10)), ::testing::ElementsAre(10));
  EXPECT_THAT(*store->ReadJobLog("j-000001", 0, 10), ::testing::ElementsAre("old line"));
}

TEST_P(StoreTest, CopyingFillsAnEmptyStoreAndRefusesAFullOne) {
  // The source is always SQLite (--migrate_from_sqlite); the target is the
  // store under test.
  retrain::testing::TempDir source_dir;
  auto source = SqliteStore::Open(source_dir.path() + "/old");
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<v1::Job> jobs = {MakeJob("j-000001", kBuild, v1::JOB_STATE_SUCCEEDED, "r1"),
                               MakeJob("j-000002", kTraining, v1::JOB_STATE_RUNNING)};
  v1::TaskRecord task;
  task.set_id(9);
  task.set_job_id("j-000002");
  StoreBatch batch;
  for (const auto& job : jobs) batch.jobs.push_back(&job);
  batch.tasks.push_back(&task);
  batch.counters = {{"next_job_seq", 3}, {"next_task_id", 10}};
  ASSERT_TRUE((*source)->Commit(batch).ok());
  ASSERT_TRUE((*source)->AppendJobLog("j-000002", {"a", "b"}).ok());
  ASSERT_TRUE((*source)
                  ->AppendTrainingPoints("j-000002", {Point(v1::TrainingPoint::KIND_STEP, 10),
                                                      Point(v1::TrainingPoint::KIND_STEP, 20)})
                  .ok());

  auto target = Open();
  ASSERT_NE(target, nullptr);
  auto counts = CopyStore(**source, *target);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->jobs, 2);
  EXPECT_EQ(counts->tasks, 1);
  EXPECT_EQ(counts->log_lines, 2);
  EXPECT_EQ(counts->training_points, 2);
  auto contents = target->LoadState(0);
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(Ids(contents->jobs), (std::vector<std::string>{"j-000002"}));
  EXPECT_EQ(contents->counters["next_job_seq"], 3);
  EXPECT_EQ(contents->tasks.size(), 1u);
  EXPECT_EQ(*target->FindJobIdByRequestId("r1"), "j-000001");
  EXPECT_THAT(*target->ReadJobLog("j-000002", 0, 10), ::testing::ElementsAre("a", "b"));
  EXPECT_THAT(Steps(*target->ReadTrainingPoints("j-000002", 0, 10)),
              ::testing::ElementsAre(10, 20));

  auto again = CopyStore(**source, *target);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();
}

// PostgreSQL alone: the connection, passwords and fencing.
class PostgresStoreTest : public StoreTest {};
INSTANTIATE_TEST_SUITE_P(Stores, PostgresStoreTest, ::testing::Values(StoreKind::kPostgres),
                         KindName);

TEST_P(PostgresStoreTest, APasswordInTheUriOrAWrongOneIsRefusedClearly) {
  PostgresStoreOptions options;
  options.uri = "postgresql://retrain:secret@127.0.0.1:" + std::to_string(Postgres().port()) +
                "/" + database_;
  auto in_uri = PostgresStore::Open(options);
  EXPECT_EQ(in_uri.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(in_uri.status().message()),
              ::testing::HasSubstr("--state_db_password_file"));

  options.uri = uri_;
  options.password = "wrong";
  const auto start = std::chrono::steady_clock::now();
  auto wrong = PostgresStore::Open(options);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition) << wrong.status();
  EXPECT_THAT(std::string(wrong.status().message()), ::testing::HasSubstr("authentication"));
  EXPECT_THAT(std::string(wrong.status().message()), ::testing::HasSubstr("(SQLSTATE 28P01)"));
  EXPECT_THAT(std::string(wrong.status().message()),
              ::testing::Not(::testing::HasSubstr("LOCATION")));
  // Not retried: no retry can fix a password.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));

  // No password at all (libpq refuses before asking), and a database that
  // does not exist: told by libpq's flag and the SQLSTATE, not the text.
  options.password.clear();
  auto none = PostgresStore::Open(options);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition) << none.status();
  options.password = Postgres().password();
  options.uri = Postgres().DatabaseUri("nosuchdb");
  auto missing = PostgresStore::Open(options);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition) << missing.status();
  EXPECT_THAT(std::string(missing.status().message()), ::testing::HasSubstr("(SQLSTATE 3D000)"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_P(PostgresStoreTest, CommitsGoOnAfterTheServerRestartsAndWhileItIsDown) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  v1::Job job = MakeJob("j-000001", kBuild, v1::JOB_STATE_RUNNING);
  StoreBatch batch;
  batch.jobs.push_back(&job);
  ASSERT_TRUE(store->Commit(batch).ok());

  Postgres().Kill();
  Postgres().Start();
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  absl::Status s = store->Commit(batch);
  EXPECT_TRUE(s.ok()) << s;

  // Down for a while: the commit waits for it rather than failing. (The
  // server is started from this thread: a process dies with the thread that
  // started it.)
  Postgres().Stop();
  job.set_state(v1::JOB_STATE_CANCELLED);
  std::thread commit([&] { s = store->Commit(batch); });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  Postgres().Start();
  commit.join();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(store->LoadJob("j-000001")->state(), v1::JOB_STATE_CANCELLED);
}

TEST_P(PostgresStoreTest, AStoreOfAnEpochThatLostTheLeaseCannotWrite) {
  ASSERT_NE(Open(), nullptr);  // creates the tables
  Sql("UPDATE leader SET epoch = 5, holder = 'a:1', expires_at = now() + interval '1 hour'");
  auto leader = Open(/*leader_epoch=*/5);
  ASSERT_NE(leader, nullptr);
  v1::Job job = MakeJob("j-000001", kBuild, v1::JOB_STATE_RUNNING);
  StoreBatch batch;
  batch.jobs.push_back(&job);
  ASSERT_TRUE(leader->Commit(batch).ok());

  // Another coordinator takes over: the old epoch's writes are refused.
  Sql("UPDATE leader SET epoch = 6, holder = 'b:1'");
  job.set_state(v1::JOB_STATE_FAILED);
  absl::Status s = leader->Commit(batch);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("fenced"));
  EXPECT_FALSE(leader->AppendJobLog("j-000001", {"late"}).ok());
  EXPECT_FALSE(
      leader->AppendTrainingPoints("j-000001", {Point(v1::TrainingPoint::KIND_STEP, 1)}).ok());
  EXPECT_TRUE(leader->ReadTrainingPoints("j-000001", 0, 10)->empty());
  EXPECT_EQ(leader->LoadJob("j-000001")->state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(leader->ReadJobLog("j-000001", 0, 10)->empty());

  // Its own lease run out: refused too, even with no successor.
  Sql("UPDATE leader SET epoch = 5, holder = 'a:1', expires_at = now() - interval '1 second'");
  EXPECT_EQ(leader->Commit(batch).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SqliteStoreTest, ADatabaseFromBeforeTheJobColumnsGetsThemFilledIn) {
  retrain::testing::TempDir dir;
  const std::string state = dir.path() + "/state";
  std::filesystem::create_directories(state);
  {
    // The jobs table as it was: the job only as a blob.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((state + "/retrain.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE jobs(seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
                           "job BLOB NOT NULL)",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_stmt* put = nullptr;
    ASSERT_EQ(
        sqlite3_prepare_v2(db, "INSERT INTO jobs(seq, id, job) VALUES(?, ?, ?)", -1, &put, nullptr),
        SQLITE_OK);
    const std::vector<v1::Job> old = {
        MakeJob("j-000001", kBuild, v1::JOB_STATE_SUCCEEDED, "a"),
        MakeJob("j-000002", kTraining, v1::JOB_STATE_CANCELLED),
        MakeJob("j-000003", kTraining, v1::JOB_STATE_QUEUED, "c"),
    };
    for (const auto& job : old) {
      const std::string blob = job.SerializeAsString();
      sqlite3_bind_int64(put, 1, JobSequence(job.id()));
      sqlite3_bind_text(put, 2, job.id().c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_blob(put, 3, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
      ASSERT_EQ(sqlite3_step(put), SQLITE_DONE);
      sqlite3_reset(put);
    }
    sqlite3_finalize(put);
    sqlite3_close(db);
  }
  for (int open = 0; open < 2; ++open) {  // filled in once, then opened as any other
    SCOPED_TRACE(open);
    auto store = SqliteStore::Open(state);
    ASSERT_TRUE(store.ok()) << store.status();
    auto contents = (*store)->LoadState(1);
    ASSERT_TRUE(contents.ok()) << contents.status();
    EXPECT_EQ(Ids(contents->jobs), (std::vector<std::string>{"j-000002", "j-000003"}));
    EXPECT_EQ((contents->finished_not_loaded[{kBuild, v1::JOB_STATE_SUCCEEDED}]), 1);
    EXPECT_EQ(*(*store)->FindJobIdByRequestId("a"), "j-000001");
    EXPECT_EQ(*(*store)->FindJobIdByRequestId("c"), "j-000003");
    EXPECT_EQ((*store)->LoadJob("j-000001")->state(), v1::JOB_STATE_SUCCEEDED);
  }
}

}  // namespace
}  // namespace retrain::server
