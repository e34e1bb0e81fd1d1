#include "server/sqlite_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tests/support/cluster.h"

namespace retrain::server {
namespace {

TEST(SqliteStoreTest, WhatWasCommittedIsLoadedAfterReopening) {
  retrain::testing::TempDir dir;
  v1::Job job;
  job.set_id("j-000007");
  job.set_state(v1::JOB_STATE_RUNNING);
  v1::TaskRecord task;
  task.set_id(3);
  task.set_job_id("j-000007");
  task.set_state(v1::TASK_STATE_LEASED);
  v1::BuildPlan plan;
  plan.set_files_listed(42);
  {
    auto store = SqliteStore::Open(dir.path() + "/state");
    ASSERT_TRUE(store.ok()) << store.status();
    StoreBatch batch;
    batch.jobs.push_back(&job);
    batch.tasks.push_back(&task);
    batch.plans.emplace_back("j-000007", &plan);
    batch.counters = {{"next_task_id", 4}};
    ASSERT_TRUE((*store)->Commit(batch).ok());
  }
  auto store = SqliteStore::Open(dir.path() + "/state");
  ASSERT_TRUE(store.ok());
  auto contents = (*store)->LoadState(100);
  ASSERT_TRUE(contents.ok());
  ASSERT_EQ(contents->jobs.size(), 1u);
  EXPECT_EQ(contents->jobs[0].state(), v1::JOB_STATE_RUNNING);
  ASSERT_EQ(contents->tasks.size(), 1u);
  EXPECT_EQ(contents->tasks[0].state(), v1::TASK_STATE_LEASED);
  ASSERT_EQ(contents->plans.size(), 1u);
  EXPECT_EQ(contents->plans[0].second.files_listed(), 42);
  EXPECT_EQ(contents->counters["next_task_id"], 4);

  StoreBatch drop;
  drop.drop_tasks_of_jobs.push_back("j-000007");
  ASSERT_TRUE((*store)->Commit(drop).ok());
  contents = (*store)->LoadState(100);
  EXPECT_TRUE(contents->tasks.empty());
  EXPECT_TRUE(contents->plans.empty());
  EXPECT_EQ(contents->jobs.size(), 1u);
}

TEST(SqliteStoreTest, JobsAreReadOneByOneAndNewestFirstBeforeAnId) {
  retrain::testing::TempDir dir;
  auto store = SqliteStore::Open(dir.path() + "/state");
  ASSERT_TRUE(store.ok()) << store.status();
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
  ASSERT_TRUE((*store)->Commit(batch).ok());
  auto one = (*store)->LoadJob("j-999999");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->id(), "j-999999");
  EXPECT_EQ((*store)->LoadJob("j-000003").status().code(), absl::StatusCode::kNotFound);

  auto before = (*store)->LoadJobsBefore(JobSequence("j-1000001"), 3);
  ASSERT_TRUE(before.ok()) << before.status();
  std::vector<std::string> got;
  for (const auto& j : *before) got.push_back(j.id());
  EXPECT_EQ(got, (std::vector<std::string>{"j-1000000", "j-999999", "j-000002"}));
  EXPECT_TRUE((*store)->LoadJobsBefore(1, 10)->empty());

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

TEST(SqliteStoreTest, AtStartOnlyUnfinishedAndTheNewestFinishedJobsAreParsed) {
  retrain::testing::TempDir dir;
  auto store = SqliteStore::Open(dir.path() + "/state");
  ASSERT_TRUE(store.ok()) << store.status();
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
  ASSERT_TRUE((*store)->Commit(batch).ok());

  auto two = (*store)->LoadState(2);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(Ids(two->jobs),
            (std::vector<std::string>{"j-000003", "j-000004", "j-000005", "j-000006"}));
  using Key = std::pair<v1::JobType, v1::JobState>;
  EXPECT_EQ(two->finished_not_loaded,
            (std::map<Key, int64_t>{{{kBuild, v1::JOB_STATE_SUCCEEDED}, 1},
                                    {{kTraining, v1::JOB_STATE_FAILED}, 1}}));
  EXPECT_EQ(two->newest_not_loaded_seq, 2);
  // A retried submit finds its job whether or not it was loaded.
  EXPECT_EQ(*(*store)->FindJobIdByRequestId("first"), "j-000001");
  EXPECT_EQ(*(*store)->FindJobIdByRequestId("last"), "j-000006");
  EXPECT_EQ(*(*store)->FindJobIdByRequestId("never"), "");
  EXPECT_EQ(*(*store)->FindJobIdByRequestId(""), "");

  auto none = (*store)->LoadState(0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(Ids(none->jobs), (std::vector<std::string>{"j-000003", "j-000006"}));
  EXPECT_EQ(none->finished_not_loaded.size(), 3u);
  EXPECT_EQ(none->newest_not_loaded_seq, 5);

  auto all = (*store)->LoadState(10);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->jobs.size(), jobs.size());
  EXPECT_TRUE(all->finished_not_loaded.empty());
  EXPECT_EQ(all->newest_not_loaded_seq, -1);

  // A job that finishes later is found by its new state.
  jobs[2].set_state(v1::JOB_STATE_SUCCEEDED);
  StoreBatch finish;
  finish.jobs.push_back(&jobs[2]);
  ASSERT_TRUE((*store)->Commit(finish).ok());
  none = (*store)->LoadState(0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(Ids(none->jobs), (std::vector<std::string>{"j-000006"}));
  EXPECT_EQ((none->finished_not_loaded[{kTraining, v1::JOB_STATE_SUCCEEDED}]), 1);
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
