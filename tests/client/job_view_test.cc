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

TEST(PointRowTest, EachKindOfPointReadsAsOneLine) {
  v1::TrainingPoint step;
  step.set_kind(v1::TrainingPoint::KIND_STEP);
  step.set_step(10);
  step.set_loss(2.30125);
  step.set_learning_rate(0.05);
  step.set_examples_per_sec(1013.25);
  step.set_epoch(0.8);
  EXPECT_EQ(PointRow(step), "step     10  loss 2.3013  lr 0.05  1013.2 examples/s  epoch 0.80");
  v1::TrainingPoint checkpoint;
  checkpoint.set_kind(v1::TrainingPoint::KIND_CHECKPOINT);
  checkpoint.set_step(20);
  checkpoint.set_checkpoint("/runs/a/model.ckpt-20");
  EXPECT_EQ(PointRow(checkpoint), "checkpoint at step 20: /runs/a/model.ckpt-20");
  v1::TrainingPoint eval;
  eval.set_kind(v1::TrainingPoint::KIND_EVAL);
  eval.set_step(75);
  eval.set_precision_at_1(0.91);
  eval.set_precision_at_5(1);
  eval.set_num_examples(2000);
  eval.set_checkpoint("/runs/a/model.ckpt-75");
  EXPECT_EQ(PointRow(eval),
            "eval at step 75: precision @ 1 = 0.9100, @ 5 = 1.0000 on 2000 examples "
            "(/runs/a/model.ckpt-75)");
}

}  // namespace
}  // namespace retrain::client
