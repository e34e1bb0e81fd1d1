// Training runs end to end on tiny datasets: resume, fine-tuning, NaN stop,
// damaged records and checkpoints, what a killed run left behind.
#include "trainer/trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/trainer/input/test_dataset.h"
#include "trainer/checkpoint.h"
#include "trainer/spec/checkpoint_summary.h"
#include "trainer/nn/model.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

using testing::DatasetSpec;
using testing::MakeTempDir;
using testing::WriteDataset;

std::string Dataset(const std::string& name, int num_labels) {
  const std::string dir = MakeTempDir(name);
  DatasetSpec spec;
  spec.num_labels = num_labels;
  spec.splits = {{"train", 48, 2, 40, 40, false, 90}, {"validation", 12, 1, 40, 40, false, 90}};
  WriteDataset(dir, spec);
  return dir;
}

TrainOptions Options(const std::string& data, const std::string& train_dir, int64_t steps) {
  TrainOptions o;
  o.data_dir = data;
  o.train_dir = train_dir;
  o.model = "small";
  o.batch_size = 8;
  o.max_steps = steps;
  o.image_size = 32;
  o.input_queue_memory_factor = 0;
  o.num_preprocess_threads = 2;
  o.num_readers = 2;
  o.initial_learning_rate = 0.01;
  o.num_intra_op_threads = 1;  // bitwise-repeatable arithmetic
  o.seed = 3;
  return o;
}

std::vector<torch::Tensor> Weights(const std::string& checkpoint) {
  const CheckpointMeta meta = ReadCheckpointMeta(checkpoint);
  ModelPtr model = CreateModel(meta.model, static_cast<int>(meta.num_classes));
  RestoreCheckpoint(checkpoint, *model, nullptr, nullptr);
  std::vector<torch::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach().clone());
  return out;
}

TEST(TrainerTest, ResumeContinuesTheSameTrajectory) {
  const std::string data = Dataset("resume-data", 3);
  const std::string straight = MakeTempDir("straight");
  const std::string resumed = MakeTempDir("resumed");
  Train(Options(data, straight, 12));
  Train(Options(data, resumed, 5));  // stops at step 5 with a checkpoint
  Train(Options(data, resumed, 12));  // resumes from it
  CheckpointManager a(straight, 5), b(resumed, 5);
  ASSERT_EQ(ReadCheckpointMeta(*b.Latest()).step, 12);
  const auto wa = Weights(*a.Latest());
  const auto wb = Weights(*b.Latest());
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    EXPECT_TRUE(torch::allclose(wa[i], wb[i], 1e-6, 1e-7)) << "parameter " << i;
  }
  // And it did learn something: the weights moved from step 5.
  CheckpointManager bb(resumed, 5);
  EXPECT_EQ(bb.List().size(), 2u);
  // Each checkpoint has its summary, readable without LibTorch.
  const auto summary = ReadCheckpointSummary(*b.Latest());
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->model, "small");
  EXPECT_EQ(summary->num_classes, 4);
  EXPECT_EQ(summary->step, 12);
  EXPECT_EQ(NewestCheckpointSummary(resumed)->step, 12);
}

TEST(TrainerTest, FineTunesFromACheckpointWithAnotherClassCount) {
  const std::string three = Dataset("ft-three", 3);
  const std::string five = Dataset("ft-five", 5);
  const std::string pre = MakeTempDir("ft-pre");
  Train(Options(three, pre, 3));
  const std::string checkpoint = *CheckpointManager(pre, 5).Latest();

  TrainOptions o = Options(five, MakeTempDir("ft-no-flag"), 2);
  o.pretrained_model_checkpoint_path = checkpoint;
  try {
    Train(o);
    FAIL() << "a class-count mismatch without --fine_tune must be refused";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig);
    EXPECT_THAT(e.what(), ::testing::HasSubstr("--fine_tune"));
  }
  o.train_dir = MakeTempDir("ft-tuned");
  o.fine_tune = true;
  Train(o);
  const CheckpointMeta meta = ReadCheckpointMeta(*CheckpointManager(o.train_dir, 5).Latest());
  EXPECT_EQ(meta.num_classes, 6);
  EXPECT_EQ(meta.step, 2);  // the step counter starts fresh
  // Its summary names the new dataset's classes, not the old ones.
  const auto summary = ReadCheckpointSummary(*CheckpointManager(o.train_dir, 5).Latest());
  ASSERT_TRUE(summary.has_value());
  ASSERT_EQ(summary->labels.size(), 5u);
  EXPECT_EQ(summary->labels.back().id, 5);
  EXPECT_EQ(summary->labels.back().name, "class5");
}

TEST(TrainerTest, NanLossStopsWithAClearMessage) {
  TrainOptions o = Options(Dataset("nan-data", 3), MakeTempDir("nan"), 50);
  o.initial_learning_rate = 1e30;
  try {
    Train(o);
    FAIL() << "training went on with a diverged loss";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kNumerical);
    EXPECT_THAT(e.what(), ::testing::HasSubstr("lower --initial_learning_rate"));
  }
}

TEST(TrainerTest, AutoBatchSizeNeedsAGpu) {
  TrainOptions o = Options(Dataset("auto-data", 3), MakeTempDir("auto"), 5);
  o.batch_size = kAutoBatchSize;
  try {
    Train(o);
    FAIL() << "--batch_size auto ran on the CPU";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig);
    EXPECT_THAT(e.what(), ::testing::HasSubstr("CPU ranks need a number (--batch_size N)"));
  }
}

TEST(TrainerTest, TrainsInBfloat16AndChannelsLast) {
  const std::string data = Dataset("bf16-data", 3);
  const std::string fp32 = MakeTempDir("fp32"), bf16 = MakeTempDir("bf16");
  const std::string nhwc = MakeTempDir("nhwc");
  Train(Options(data, fp32, 6));
  TrainOptions b = Options(data, bf16, 6);
  b.precision = "bf16";
  Train(b);
  TrainOptions c = Options(data, nhwc, 6);
  c.memory_format = "channels_last";
  Train(c);
  const auto w32 = Weights(*CheckpointManager(fp32, 5).Latest());
  const auto w16 = Weights(*CheckpointManager(bf16, 5).Latest());
  const auto wcl = Weights(*CheckpointManager(nhwc, 5).Latest());
  ASSERT_EQ(w32.size(), w16.size());
  bool bf16_differs = false;
  for (size_t i = 0; i < w32.size(); ++i) {
    // bf16 arithmetic: the same training, not the same bits (8 mantissa bits).
    EXPECT_TRUE(torch::isfinite(w16[i]).all().item<bool>());
    EXPECT_TRUE(torch::allclose(w32[i], w16[i], 0.1, 0.02)) << "parameter " << i;
    bf16_differs = bf16_differs || !torch::equal(w32[i], w16[i]);
    // A layout change only: the same numbers, up to summation order.
    EXPECT_TRUE(torch::allclose(w32[i], wcl[i], 1e-4, 1e-5)) << "parameter " << i;
  }
  EXPECT_TRUE(bf16_differs) << "--precision bf16 changed nothing";

  TrainOptions bad = Options(data, MakeTempDir("bad-precision"), 1);
  bad.precision = "fp16";
  EXPECT_THROW(Train(bad), TrainerError);
}

TEST(TrainerTest, EvaluatesTheNewestCheckpoint) {
  const std::string data = Dataset("eval-data", 3);
  const std::string run = MakeTempDir("eval-run");
  Train(Options(data, run, 4));
  EvalOptions e;
  e.data_dir = data;
  e.checkpoint_dir = run;
  e.run_once = true;
  e.batch_size = 5;
  e.num_preprocess_threads = 2;
  EvalResult r = Evaluate(e);
  EXPECT_EQ(r.num_examples, 12);
  EXPECT_EQ(r.step, 4);
  EXPECT_GE(r.precision_at_5, r.precision_at_1);
  EXPECT_LE(r.precision_at_1, 1.0);
}

TEST(TrainerTest, ADamagedRecordStopsTrainingNamingItOrIsSkippedWhenAsked) {
  const std::string data = MakeTempDir("damaged-data");
  DatasetSpec spec;
  spec.splits = {{"train", 48, 2, 40, 40, false, 90}, {"validation", 12, 1, 40, 40, false, 90}};
  const testing::WrittenDataset written = WriteDataset(data, spec);
  const testing::WrittenRecord& victim = written.train[3];
  const std::string shard = data + "/train-00000-of-00002";
  ASSERT_EQ(victim.shard, 0);
  std::string bytes = testing::ReadFile(shard);
  bytes[static_cast<size_t>(victim.offset + 30)] ^= 0x10;
  testing::WriteFile(shard, bytes);
  // 12 steps of 8 read every record twice.
  try {
    Train(Options(data, MakeTempDir("damaged-stop"), 12));
    FAIL() << "training read past a damaged record";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kData);
    EXPECT_THAT(e.what(), ::testing::HasSubstr(shard));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("offset " + std::to_string(victim.offset)));
  }
  TrainOptions skip = Options(data, MakeTempDir("damaged-skip"), 12);
  skip.skip_corrupt_records = true;
  Train(skip);
  EXPECT_EQ(ReadCheckpointMeta(*CheckpointManager(skip.train_dir, 5).Latest()).step, 12);
}

TEST(TrainerTest, ADamagedCheckpointIsAClearError) {
  const std::string data = Dataset("bad-ckpt-data", 3);
  const TrainOptions o = Options(data, MakeTempDir("bad-ckpt"), 2);
  Train(o);
  const std::string checkpoint = *CheckpointManager(o.train_dir, 5).Latest();
  std::string bytes = testing::ReadFile(checkpoint);
  testing::WriteFile(checkpoint, bytes.substr(0, bytes.size() / 2));
  TrainOptions more = o;
  more.max_steps = 4;
  try {
    Train(more);
    FAIL() << "resumed from a truncated checkpoint";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kData);
    EXPECT_THAT(e.what(), ::testing::HasSubstr(checkpoint));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("not a readable retrain checkpoint"));
  }
}

TEST(TrainerTest, WhatAKilledRunLeftHalfWrittenIsRemoved) {
  const std::string data = Dataset("leftover-data", 3);
  const TrainOptions o = Options(data, MakeTempDir("leftover"), 2);
  for (const char* name : {".model.ckpt-7.tmp-12345", ".model.ckpt-7.json.tmp", ".checkpoint.tmp"}) {
    testing::WriteFile(o.train_dir + "/" + name, "partial");
  }
  Train(o);
  for (const auto& e : std::filesystem::directory_iterator(o.train_dir)) {
    EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
  }
  EXPECT_EQ(ReadCheckpointMeta(*CheckpointManager(o.train_dir, 5).Latest()).step, 2);
}

}  // namespace
}  // namespace retrain::trainer
