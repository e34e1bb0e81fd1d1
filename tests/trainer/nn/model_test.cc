#include "trainer/nn/model.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "trainer/spec/model_catalog.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

int64_t CountParameters(const Model& model) {
  int64_t count = 0;
  for (const auto& p : model.parameters()) count += p.numel();
  return count;
}

// Names of the parameters whose leading dimension is the class count: with
// an odd class count only the logits layers have one.
std::vector<std::string> ClassSizedParameters(const Model& model, int num_classes) {
  std::vector<std::string> names;
  for (const auto& item : model.named_parameters()) {
    if (item.value().size(0) == num_classes) names.push_back(item.key());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ModelRegistryTest, NamesEveryModel) {
  EXPECT_EQ(ModelNames(), (std::vector<std::string>{"inception_v3", "linear", "resnet50", "small"}));
}

TEST(ModelRegistryTest, RejectsUnknownNamesAndClassCounts) {
  try {
    CreateModel("vgg16", 10);
    FAIL() << "no throw";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig);
    EXPECT_NE(std::string(e.what()).find("inception_v3, linear, resnet50, small"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(CreateModel("small", 0), TrainerError);
}

TEST(ModelRegistryTest, MatchesTheCatalogTheCoordinatorChecksAgainst) {
  std::vector<std::string> names;
  for (const auto& info : ModelCatalog()) {
    names.push_back(info.name);
    EXPECT_EQ(CreateModel(info.name, 3)->DefaultImageSize(), info.default_image_size)
        << info.name;
  }
  EXPECT_EQ(names, ModelNames());
}

TEST(LinearModelTest, PoolsAnyInputSizeToOneLayerWithoutNormalisation) {
  ModelPtr model = CreateModel("linear", 5);
  EXPECT_EQ(model->DefaultImageSize(), 32);
  EXPECT_EQ(model->parameters().size(), 2u);
  EXPECT_TRUE(model->buffers().empty());
  for (int side : {32, 40}) {
    auto out = model->Forward(torch::rand({3, 3, side, side}));
    EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{3, 5}));
    EXPECT_FALSE(out.aux_logits.defined());
  }
}

TEST(SmallModelTest, ShapesNamesAndWeights) {
  ModelPtr model = CreateModel("small", 11);
  EXPECT_EQ(model->model_name(), "small");
  EXPECT_EQ(model->num_classes(), 11);
  EXPECT_EQ(model->DefaultImageSize(), 32);
  EXPECT_TRUE(model->is_training());
  ModelOutput out = model->Forward(torch::randn({2, 3, 32, 32}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 11}));
  EXPECT_FALSE(out.aux_logits.defined());
  // MNIST's own 28 px works too.
  model->eval();
  out = model->Forward(torch::randn({2, 3, 28, 28}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 11}));

  EXPECT_EQ(model->ClassifierParameterNames(), (std::vector<std::string>{"fc.bias", "fc.weight"}));
  EXPECT_EQ(ClassSizedParameters(*model, 11), model->ClassifierParameterNames());
  EXPECT_TRUE(model->IsClassifierParameter("fc.weight"));
  EXPECT_FALSE(model->IsClassifierParameter("conv1.weight"));

  EXPECT_TRUE(model->IsDecayedWeight("conv1.weight"));
  EXPECT_TRUE(model->IsDecayedWeight("fc.weight"));
  EXPECT_FALSE(model->IsDecayedWeight("fc.bias"));
  EXPECT_FALSE(model->IsDecayedWeight("bn1.weight"));
  EXPECT_FALSE(model->IsDecayedWeight("bn1.bias"));
  EXPECT_FALSE(model->IsDecayedWeight("bn1.running_mean"));
  EXPECT_LT(CountParameters(*model), 100000);
}

// Decayed exactly when the parameter is a conv or linear weight, i.e. has
// two or more dimensions (biases and batch-norm gamma/beta have one).
void ExpectDecayedWeightsAreTheMultiDimensionalParameters(const Model& model) {
  size_t decayed = 0;
  for (const auto& item : model.named_parameters()) {
    EXPECT_EQ(model.IsDecayedWeight(item.key()), item.value().dim() >= 2) << item.key();
    decayed += model.IsDecayedWeight(item.key()) ? 1 : 0;
  }
  EXPECT_EQ(model.DecayedWeights().size(), decayed);
}

TEST(ResNet50Test, TorchvisionLayoutAndShapes) {
  ModelPtr model = CreateModel("resnet50", 1000);
  EXPECT_EQ(model->DefaultImageSize(), 224);
  // torchvision.models.resnet50(): 25,557,032 parameters in 161 tensors.
  EXPECT_EQ(CountParameters(*model), 25557032);
  EXPECT_EQ(model->parameters().size(), 161u);
  EXPECT_EQ(model->buffers().size(), 159u);
  EXPECT_EQ(model->ClassifierParameterNames(), (std::vector<std::string>{"fc.bias", "fc.weight"}));
  ExpectDecayedWeightsAreTheMultiDimensionalParameters(*model);
  EXPECT_TRUE(model->IsDecayedWeight("layer1.0.downsample.0.weight"));
  EXPECT_FALSE(model->IsDecayedWeight("layer1.0.downsample.1.weight"));  // batch norm

  model = CreateModel("resnet50", 7);
  EXPECT_EQ(ClassSizedParameters(*model, 7), model->ClassifierParameterNames());
  torch::NoGradGuard no_grad;
  const ModelOutput out = model->Forward(torch::randn({2, 3, 224, 224}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 7}));
  EXPECT_FALSE(out.aux_logits.defined());
}

TEST(InceptionV3Test, TorchvisionLayoutAndReferenceSettings) {
  ModelPtr model = CreateModel("inception_v3", 1000);
  EXPECT_EQ(model->DefaultImageSize(), 299);
  // torchvision.models.inception_v3(aux_logits=True): 27,161,264 parameters
  // in 292 tensors, 288 buffers.
  EXPECT_EQ(CountParameters(*model), 27161264);
  EXPECT_EQ(model->parameters().size(), 292u);
  EXPECT_EQ(model->buffers().size(), 288u);
  EXPECT_EQ(model->ClassifierParameterNames(),
            (std::vector<std::string>{"AuxLogits.fc.bias", "AuxLogits.fc.weight", "fc.bias",
                                      "fc.weight"}));
  ExpectDecayedWeightsAreTheMultiDimensionalParameters(*model);
  EXPECT_TRUE(model->IsDecayedWeight("Mixed_7c.branch_pool.conv.weight"));
  EXPECT_FALSE(model->IsDecayedWeight("Mixed_7c.branch_pool.bn.weight"));

  // Batch norm as the reference: epsilon 0.001, decay 0.9997.
  for (const auto& module : model->modules(/*include_self=*/false)) {
    if (const auto* bn = module->as<torch::nn::BatchNorm2dImpl>()) {
      EXPECT_DOUBLE_EQ(bn->options.eps(), 0.001);
      EXPECT_NEAR(bn->options.momentum().value(), 0.0003, 1e-12);
    }
    if (const auto* dropout = module->as<torch::nn::DropoutImpl>()) {
      EXPECT_DOUBLE_EQ(dropout->options.p(), 0.2);
    }
  }
}

TEST(InceptionV3Test, OutputShapesInTrainingAndEvaluation) {
  ModelPtr model = CreateModel("inception_v3", 5);
  EXPECT_EQ(ClassSizedParameters(*model, 5), model->ClassifierParameterNames());
  torch::NoGradGuard no_grad;  // shapes only
  // Training: batch statistics need two images; the auxiliary head runs.
  ModelOutput out = model->Forward(torch::randn({2, 3, 299, 299}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 5}));
  ASSERT_TRUE(out.aux_logits.defined());
  EXPECT_EQ(out.aux_logits.sizes(), (std::vector<int64_t>{2, 5}));
  model->eval();
  out = model->Forward(torch::randn({1, 3, 299, 299}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{1, 5}));
  EXPECT_FALSE(out.aux_logits.defined());
}

TEST(InceptionV3Test, SaysWhenImagesAreTooSmall) {
  ModelPtr model = CreateModel("inception_v3", 5);
  torch::NoGradGuard no_grad;
  try {
    model->Forward(torch::zeros({2, 3, 224, 224}));  // the auxiliary head needs 299
    FAIL() << "no throw";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig);
    EXPECT_NE(std::string(e.what()).find("299"), std::string::npos) << e.what();
  }
  model->eval();
  EXPECT_THROW(model->Forward(torch::zeros({1, 3, 64, 64})), TrainerError);
}

TEST(InitializationTest, TruncatedNormalStaysWithinTwoStddev) {
  torch::Tensor t = torch::empty({100000});
  detail::TruncatedNormal_(t, 0.1);
  EXPECT_LE(t.abs().max().item<double>(), 0.2);
  EXPECT_NEAR(t.mean().item<double>(), 0.0, 0.002);
  // Standard deviation of N(0, s) truncated at 2s: 0.8796 s.
  EXPECT_NEAR(t.std().item<double>(), 0.08796, 0.001);
}

}  // namespace
}  // namespace retrain::trainer
