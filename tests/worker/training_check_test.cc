// A training's and an evaluation's check on the worker: paths confined on
// this host's file system, the manifest and the checkpoints read, train_dir
// made; each refusal with its code and field.
#include "worker/training_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "tests/worker/temp_tree.h"
#include "tests/worker/tiny_dataset.h"
#include "trainer/spec/checkpoint_summary.h"

namespace retrain::worker {
namespace {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;
using retrain::testing::WriteFile;
using ::testing::HasSubstr;

class TrainingCheckTest : public TempTreeTest {
 protected:
  TrainingCheckTest() { retrain::testing::WriteTinyDataset(root_ + "/data", 2); }

  v1::CheckTrainingTask Training(const std::string& train_dir) const {
    v1::CheckTrainingTask task;
    task.add_data_roots(root_);
    task.mutable_training()->set_data_dir(root_ + "/data");
    task.mutable_training()->set_train_dir(root_ + "/" + train_dir);
    task.mutable_training()->set_model("small");
    return task;
  }
};

int Code(const v1::CheckTrainingResult& result) { return result.refusal().code(); }

TEST_F(TrainingCheckTest, ATrainingGetsItsManifestAndItsTrainDir) {
  const v1::CheckTrainingResult result = RunCheckTrainingTask(Training("run"));
  ASSERT_FALSE(result.has_refusal()) << result.refusal().message();
  EXPECT_THAT(result.manifest_json(), HasSubstr("\"train-00000-of-00002\""));
  EXPECT_FALSE(result.has_resumed());
  EXPECT_FALSE(result.has_pretrained());
  EXPECT_TRUE(fs::is_directory(root_ + "/run"));
}

TEST_F(TrainingCheckTest, WhatTheFileSystemShowsIsRefusedWithItsField) {
  // A symlink out of the roots, spelled inside them.
  fs::create_directory_symlink("/usr", root_ + "/out");
  v1::CheckTrainingResult r = RunCheckTrainingTask(Training("out/run"));
  EXPECT_EQ(Code(r), static_cast<int>(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(r.refusal().message(), HasSubstr("spec.train_dir"));
  EXPECT_FALSE(fs::exists("/usr/run"));
  // No dataset, or one whose shard is gone.
  v1::CheckTrainingTask task = Training("run");
  task.mutable_training()->set_data_dir(root_ + "/nothing");
  r = RunCheckTrainingTask(task);
  EXPECT_EQ(Code(r), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.refusal().message(), HasSubstr("spec.data_dir: "));
  EXPECT_TRUE(r.manifest_json().empty());
  fs::remove(root_ + "/data/train-00001-of-00002");
  r = RunCheckTrainingTask(Training("run"));
  EXPECT_EQ(Code(r), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.refusal().message(), HasSubstr("train-00001-of-00002 is missing"));
  EXPECT_FALSE(fs::exists(root_ + "/run")) << "a refused request makes nothing";
}

TEST_F(TrainingCheckTest, TheCheckpointsItWouldResumeOrStartFromAreDescribed) {
  // A checkpoint and its summary in train_dir, as the trainer writes them.
  WriteFile(root_ + "/run/model.ckpt-40", "weights");
  trainer::CheckpointSummary summary;
  summary.model = "linear";
  summary.num_classes = 3;
  summary.step = 40;
  ASSERT_TRUE(trainer::WriteCheckpointSummary(root_ + "/run/model.ckpt-40", summary));
  v1::CheckTrainingTask task = Training("run");
  task.mutable_training()->set_pretrained_model_checkpoint_path(root_ + "/run/model.ckpt-40");
  v1::CheckTrainingResult r = RunCheckTrainingTask(task);
  ASSERT_FALSE(r.has_refusal()) << r.refusal().message();
  EXPECT_EQ(r.resumed().model(), "linear");
  EXPECT_EQ(r.resumed().num_classes(), 3);
  EXPECT_EQ(r.resumed().step(), 40);
  EXPECT_EQ(r.pretrained().model(), "linear");
  // Weights that are neither a checkpoint nor a safetensors file.
  WriteFile(root_ + "/weights.bin", "not weights");
  task.mutable_training()->set_pretrained_model_checkpoint_path(root_ + "/weights.bin");
  r = RunCheckTrainingTask(task);
  EXPECT_EQ(Code(r), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.refusal().message(), HasSubstr("spec.pretrained_model_checkpoint_path: "));
  EXPECT_THAT(r.refusal().message(), HasSubstr("nor a .safetensors weights file"));
}

TEST_F(TrainingCheckTest, AnEvaluationNeedsACheckpoint) {
  v1::CheckTrainingTask task;
  task.add_data_roots(root_);
  task.mutable_evaluation()->set_data_dir(root_ + "/data");
  task.mutable_evaluation()->set_checkpoint_dir(root_ + "/run");
  v1::CheckTrainingResult r = RunCheckTrainingTask(task);
  EXPECT_EQ(Code(r), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.refusal().message(), HasSubstr("holds no checkpoint; train first"));
  WriteFile(root_ + "/run/checkpoint", "model.ckpt-1\n");
  r = RunCheckTrainingTask(task);
  EXPECT_FALSE(r.has_refusal()) << r.refusal().message();
}

}  // namespace
}  // namespace retrain::worker
