// The CLI's one-line progress of a running job.
#include "client/job_view.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace retrain::client {
namespace {

namespace v1 = retrain::v1;
using ::testing::HasSubstr;
using ::testing::Not;

v1::Job Running(const std::string& phase, const std::string& unit, int64_t done, int64_t total) {
  v1::Job job;
  job.set_type(v1::JOB_TYPE_DATASET_BUILD);
  job.set_state(v1::JOB_STATE_RUNNING);
  v1::JobProgress& p = *job.mutable_progress();
  p.set_phase(phase);
  p.set_unit(unit);
  p.set_done(done);
  p.set_total(total);
  return job;
}

TEST(ProgressLineTest, ListingCountsDirectoriesAndTheFilesFoundInThem) {
  v1::Job job = Running("listing", "directories", 3, 10);
  job.mutable_progress()->set_found(1200);
  EXPECT_THAT(ProgressLine(job), HasSubstr("3/10 directories, 1200 files found"));
}

TEST(ProgressLineTest, EachPhaseNamesWhatItCounts) {
  EXPECT_THAT(ProgressLine(Running("validating", "files", 5, 8)), HasSubstr("5/8 files"));
  const std::string planning = ProgressLine(Running("planning shards", "tasks", 0, 1));
  EXPECT_THAT(planning, HasSubstr("0/1 tasks"));
  EXPECT_THAT(planning, Not(HasSubstr("found")));
  EXPECT_THAT(ProgressLine(Running("verifying", "records", 7, 9)), HasSubstr("7/9 records"));
}

}  // namespace
}  // namespace retrain::client
