// retrain's models against torchvision's: the same weights, loaded from a
// safetensors file that torchvision's model wrote, give the same logits.
// This is what makes torchvision's ImageNet weights usable as
// --pretrained_model_checkpoint_path (scripts/weights_to_safetensors.py).
//
// The reference is tests/trainer/torchvision_reference.py run by the Python
// that has torch and torchvision (RETRAIN_TORCHVISION_PYTHON).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "tests/trainer/input/test_dataset.h"
#include "worker/trainer/checkpoint.h"
#include "worker/trainer/safetensors_weights.h"

namespace retrain::trainer {
namespace {

struct Reference {
  torch::Tensor input;
  torch::Tensor logits;
  std::string weights;
};

// Runs the reference script for `model` at `image_size`; fails the test
// when it cannot.
Reference RunTorchvision(const std::string& model, int image_size) {
  const std::string dir = testing::MakeTempDir("torchvision");
  const std::string command = std::string(RETRAIN_TORCHVISION_PYTHON) + " " +
                              RETRAIN_SOURCE_DIR "/tests/trainer/torchvision_reference.py " +
                              model + " " + std::to_string(image_size) + " " + dir;
  const int status = std::system(command.c_str());
  EXPECT_EQ(status, 0) << command;
  if (status != 0) return {};
  auto io = ReadSafetensors(dir + "/io.safetensors");
  return {io.at("input"), io.at("logits"), dir + "/weights.safetensors"};
}

void ExpectSameLogits(const std::string& name, int image_size) {
  const Reference ref = RunTorchvision(name, image_size);
  ASSERT_TRUE(ref.logits.defined());
  ModelPtr model = CreateModel(name, 1000);
  LoadWeights(ref.weights, *model, /*skip_classifier=*/false, /*use_moving_averages=*/false);
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor logits = model->Forward(ref.input).logits;
  ASSERT_EQ(logits.sizes(), ref.logits.sizes());
  const double scale = std::max(1.0, ref.logits.abs().max().item<double>());
  const double diff = (logits - ref.logits).abs().max().item<double>();
  EXPECT_LE(diff, 1e-4 * scale) << name << ": largest difference " << diff << " of logits up to "
                                << scale;
  EXPECT_TRUE(torch::equal(logits.argmax(1), ref.logits.argmax(1))) << name;
}

TEST(TorchvisionWeightsTest, InceptionV3GivesTorchvisionsLogits) {
  ExpectSameLogits("inception_v3", 299);
}

TEST(TorchvisionWeightsTest, ResNet50GivesTorchvisionsLogits) { ExpectSameLogits("resnet50", 96); }

}  // namespace
}  // namespace retrain::trainer
