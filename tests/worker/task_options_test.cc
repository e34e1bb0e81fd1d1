// A task's shard format and verify mode as the worker reads them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "worker/task_runner.h"

namespace retrain::worker {
namespace {

using ::testing::HasSubstr;

TEST(TaskOptionsTest, EmptyIsTheDefaultAndEveryNameParses) {
  EXPECT_EQ(*TaskShardFormat(""), dataset::ShardFormat::kTfRecord);
  EXPECT_EQ(*TaskShardFormat("webdataset"), dataset::ShardFormat::kWebDataset);
  EXPECT_EQ(*TaskVerifyMode(""), dataset::VerifyMode::kFull);
  EXPECT_EQ(*TaskVerifyMode("structure"), dataset::VerifyMode::kStructure);
  for (auto format : {dataset::ShardFormat::kTfRecord, dataset::ShardFormat::kWebDataset}) {
    EXPECT_EQ(*TaskShardFormat(dataset::ShardFormatName(format)), format);
  }
  for (auto mode : {dataset::VerifyMode::kFull, dataset::VerifyMode::kStructure}) {
    EXPECT_EQ(*TaskVerifyMode(dataset::VerifyModeName(mode)), mode);
  }
}

// What a worker older than its coordinator says of an option it lacks.
TEST(TaskOptionsTest, AnUnknownNameIsRefusedWithTheNamesThisWorkerKnows) {
  const auto format = TaskShardFormat("parquet");
  EXPECT_EQ(format.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(format.status().message(),
            "shard format 'parquet' is unknown to this worker (it knows tfrecord, webdataset)");
  const auto mode = TaskVerifyMode("Full");
  EXPECT_EQ(mode.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mode.status().message(), HasSubstr("verify mode 'Full' is unknown to this worker"));
  EXPECT_THAT(mode.status().message(), HasSubstr("(it knows full, structure)"));
}

}  // namespace
}  // namespace retrain::worker
