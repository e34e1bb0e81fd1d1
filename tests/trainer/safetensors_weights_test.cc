// Weights in safetensors files: written and read back, loaded into a model
// as PyTorch's strict load_state_dict, refused naming the tensor when they
// are another model's, and exported from a checkpoint.
#include "trainer/safetensors_weights.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/trainer/input/test_dataset.h"
#include "tests/trainer/tiny_run.h"
#include "trainer/checkpoint.h"
#include "trainer/export_weights.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

using ::testing::HasSubstr;
using testing::MakeTempDir;

ModelPtr SeededModel(const std::string& name, int classes, uint64_t seed) {
  torch::manual_seed(seed);
  ModelPtr model = CreateModel(name, classes);
  torch::NoGradGuard no_grad;
  // Buffers too, so that a load that left them alone would show.
  for (auto& b : model->named_buffers()) {
    if (b.value().is_floating_point()) b.value().uniform_(0.5, 1.5);
  }
  return model;
}

using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

std::string Write(const Tensors& tensors, const std::map<std::string, std::string>& metadata = {}) {
  const std::string path = MakeTempDir("weights") + "/w.safetensors";
  WriteSafetensors(path, tensors, metadata);
  return path;
}

// Loads `path` into `model` and expects a TrainerError(kConfig) whose
// message has every one of `parts`.
void ExpectRefused(const std::string& path, Model& model, bool skip_classifier,
                   std::initializer_list<std::string> parts) {
  try {
    LoadWeights(path, model, skip_classifier, /*use_moving_averages=*/false);
    FAIL() << "loaded";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig) << e.what();
    for (const auto& p : parts) EXPECT_THAT(e.what(), HasSubstr(p));
  }
}

TEST(SafetensorsWeightsTest, AModelsTensorsGoThereAndBack) {
  ModelPtr source = SeededModel("small", 3, 1);
  const std::string path = Write(NamedTensors(*source), {{kSafetensorsModelKey, "small"}});
  const auto read = ReadSafetensors(path);
  ASSERT_EQ(read.size(), NamedTensors(*source).size());
  ModelPtr target = SeededModel("small", 3, 2);
  LoadWeights(path, *target, /*skip_classifier=*/false, /*use_moving_averages=*/false);
  for (const auto& [name, tensor] : NamedTensors(*source)) {
    EXPECT_EQ(read.at(name).scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(read.at(name), tensor)) << name;
  }
  const Tensors loaded = NamedTensors(*target);
  for (size_t i = 0; i < loaded.size(); ++i) {
    EXPECT_TRUE(torch::equal(loaded[i].second, NamedTensors(*source)[i].second)) << loaded[i].first;
  }
}

TEST(SafetensorsWeightsTest, AnotherClassCountNeedsFineTuneWhichLeavesTheClassifierFresh) {
  ModelPtr three = SeededModel("small", 3, 1);
  const std::string path = Write(NamedTensors(*three));
  ModelPtr five = SeededModel("small", 5, 2);
  ExpectRefused(path, *five, false,
                {"w.safetensors: its classifier", "(5 classes)", "--fine_tune"});
  const Tensors before = NamedTensors(*five);
  std::map<std::string, torch::Tensor> fresh;
  for (const auto& [name, t] : before) fresh[name] = t.clone();
  LoadWeights(path, *five, /*skip_classifier=*/true, false);
  const auto source = ReadSafetensors(path);
  for (const auto& [name, t] : NamedTensors(*five)) {
    if (five->IsClassifierParameter(name)) {
      EXPECT_TRUE(torch::equal(t, fresh.at(name))) << name << " was overwritten";
    } else {
      EXPECT_TRUE(torch::equal(t, source.at(name))) << name << " was not loaded";
    }
  }
}

TEST(SafetensorsWeightsTest, AnotherModelsWeightsAreRefusedNamingTheTensor) {
  ModelPtr model = SeededModel("small", 3, 1);
  const Tensors all = NamedTensors(*model);
  // The model the file says it holds.
  ExpectRefused(Write(all, {{kSafetensorsModelKey, "resnet50"}}), *model, false,
                {"holds the weights of a resnet50, not a small", "--model"});
  // A tensor missing (batch norm's counters may be).
  const std::string dropped = all.front().first;
  Tensors without(all.begin() + 1, all.end());
  ExpectRefused(Write(without), *model, false, {"lacks 1 of --model small's tensors", dropped});
  Tensors without_counters;
  for (const auto& t : all) {
    if (t.first.find("num_batches_tracked") == std::string::npos) without_counters.push_back(t);
  }
  ASSERT_LT(without_counters.size(), all.size());
  LoadWeights(Write(without_counters), *model, false, false);
  // A tensor the model does not have.
  Tensors extra = all;
  extra.emplace_back("head2.weight", torch::zeros({2, 2}));
  ExpectRefused(Write(extra), *model, false,
                {"1 tensor(s) that --model small does not have", "head2.weight"});
  // A tensor of another shape.
  Tensors reshaped = all;
  reshaped.front().second = torch::zeros({1, 2, 3});
  ExpectRefused(Write(reshaped), *model, false,
                {"tensor " + dropped + " is [1, 2, 3] and --model small's is"});
  // Another architecture altogether, with no name recorded.
  ModelPtr resnet = CreateModel("resnet50", 3);
  ExpectRefused(Write(all), *resnet, false,
                {"lacks", "of --model resnet50's tensors", "and", "more", "torchvision's"});
}

TEST(SafetensorsWeightsTest, ADamagedFileIsADataError) {
  ModelPtr model = SeededModel("small", 3, 1);
  const std::string path = Write(NamedTensors(*model));
  const std::string bytes = testing::ReadFile(path);
  testing::WriteFile(path, bytes.substr(0, bytes.size() - 10));
  try {
    LoadWeights(path, *model, false, false);
    FAIL() << "loaded a truncated file";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kData);
    EXPECT_THAT(e.what(), HasSubstr("truncated download"));
  }
}

// The weights of a model: its parameters and buffers, cloned.
std::map<std::string, torch::Tensor> WeightsOf(const Model& model) {
  std::map<std::string, torch::Tensor> weights;
  for (const auto& [name, t] : NamedTensors(model)) weights[name] = t.clone();
  return weights;
}

TEST(SafetensorsWeightsTest, ExportWritesACheckpointsAveragesOrWeightsWithItsLabels) {
  const std::string run = testing::TrainTinyRun("export", 3).train_dir;
  const std::string checkpoint = run + "/model.ckpt-3";
  ExportOptions x;
  x.checkpoint_dir = run;
  x.out = run + "/averages.safetensors";
  EXPECT_EQ(ExportWeights(x), checkpoint);
  x.raw_weights = true;
  x.out = run + "/raw.safetensors";
  ExportWeights(x);

  ModelPtr model = CreateModel("small", 4);
  for (const bool averages : {true, false}) {
    LoadWeights(checkpoint, *model, false, averages);
    const auto expected = WeightsOf(*model);
    const auto written = ReadSafetensors(run + (averages ? "/averages" : "/raw") + ".safetensors");
    ASSERT_EQ(written.size(), expected.size());
    for (const auto& [name, t] : expected) {
      EXPECT_TRUE(torch::equal(written.at(name), t)) << name << (averages ? " (averages)" : "");
    }
  }
  // Three steps move the weights but hardly their averages.
  EXPECT_FALSE(torch::equal(ReadSafetensors(run + "/raw.safetensors").at("fc.weight"),
                            ReadSafetensors(run + "/averages.safetensors").at("fc.weight")));
  const auto metadata = ReadSafetensorsIndex(run + "/averages.safetensors").metadata;
  EXPECT_EQ(metadata.at(kSafetensorsModelKey), "small");
  EXPECT_EQ(metadata.at("retrain.num_classes"), "4");
  EXPECT_EQ(metadata.at("retrain.image_size"), "32");
  EXPECT_EQ(metadata.at("retrain.step"), "3");
  EXPECT_EQ(metadata.at("retrain.weights"), "moving averages");
  const auto labels = nlohmann::json::parse(metadata.at("retrain.labels"));
  EXPECT_EQ(labels.at("1"), "class1");
  EXPECT_EQ(labels.at("3"), "class3");

  x.out = run + "/weights.pt";
  try {
    ExportWeights(x);
    FAIL() << "wrote " << x.out;
  } catch (const TrainerError& e) {
    EXPECT_THAT(e.what(), HasSubstr("--out " + x.out + ": name a .safetensors file"));
  }
}

}  // namespace
}  // namespace retrain::trainer
