// retrain's models against torchvision's: the same weights, loaded from a
// safetensors file that torchvision's model wrote, give the same logits
// (for weights trained on ImageNet's normalisation once it is folded in).
// This is what makes torchvision's ImageNet weights usable as
// --pretrained_model_checkpoint_path (scripts/weights_to_safetensors.py).
//
// The reference is tests/trainer/torchvision_reference.py run by the Python
// that has torch and torchvision (RETRAIN_TORCHVISION_PYTHON).
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "tests/trainer/input/test_dataset.h"
#include "trainer/checkpoint.h"
#include "trainer/safetensors_weights.h"

namespace retrain::trainer {
namespace {

struct Reference {
  torch::Tensor input;
  torch::Tensor logits;
  std::string weights;
};

// Runs the reference script for `model` at `image_size` (`input`:
// "imagenet" or ""); fails the test when it cannot.
Reference RunTorchvision(const std::string& model, int image_size, const std::string& input) {
  const std::string dir = testing::MakeTempDir("torchvision");
  const std::string command = std::string(RETRAIN_TORCHVISION_PYTHON) + " " +
                              RETRAIN_SOURCE_DIR "/tests/trainer/torchvision_reference.py " +
                              model + " " + std::to_string(image_size) + " " + dir + " " + input;
  const int status = std::system(command.c_str());
  EXPECT_EQ(status, 0) << command;
  if (status != 0) return {};
  auto io = ReadSafetensors(dir + "/io.safetensors");
  return {io.at("input"), io.at("logits"), dir + "/weights.safetensors"};
}

// `tolerance`: of the largest difference, relative to the largest logit
// (or 1).
void ExpectSameLogits(const std::string& name, int image_size, const std::string& input = "",
                      double tolerance = 1e-4) {
  const Reference ref = RunTorchvision(name, image_size, input);
  ASSERT_TRUE(ref.logits.defined());
  ModelPtr model = CreateModel(name, 1000);
  LoadWeights(ref.weights, *model, /*skip_classifier=*/false, /*use_moving_averages=*/false);
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = model->Forward(ref.input).logits;
  ASSERT_EQ(logits.sizes(), ref.logits.sizes());
  const double scale = std::max(1.0, ref.logits.abs().max().item<double>());
  const double diff = (logits - ref.logits).abs().max().item<double>();
  std::cout << name << " " << input << ": largest difference " << diff << " of logits up to "
            << scale << std::endl;
  EXPECT_LE(diff, tolerance * scale) << name << " " << input;
  EXPECT_TRUE(torch::equal(logits.argmax(1), ref.logits.argmax(1))) << name;
}

TEST(TorchvisionWeightsTest, InceptionV3GivesTorchvisionsLogits) {
  ExpectSameLogits("inception_v3", 299);
}

TEST(TorchvisionWeightsTest, ResNet50GivesTorchvisionsLogits) { ExpectSameLogits("resnet50", 96); }

// Weights trained on ImageNet's mean/std normalisation, folded by
// scripts/weights_to_safetensors.py into the first layers, take retrain's
// [-1, 1] pixels: exactly for inception_v3 (whose first convolution has no
// padding) and, but for the borders (where the padding stood for the mean),
// for resnet50.
TEST(TorchvisionWeightsTest, FoldedImagenetNormalisationIsExactForInceptionV3) {
  ExpectSameLogits("inception_v3", 299, "imagenet");
}

TEST(TorchvisionWeightsTest, FoldedImagenetNormalisationIsCloseForResNet50) {
  ExpectSameLogits("resnet50", 224, "imagenet", 0.05);
}

}  // namespace
}  // namespace retrain::trainer
