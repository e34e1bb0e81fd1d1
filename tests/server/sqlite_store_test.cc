#include "server/sqlite_store.h"

#include <gtest/gtest.h>

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
  auto contents = (*store)->LoadAll();
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
  contents = (*store)->LoadAll();
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

}  // namespace
}  // namespace retrain::server
