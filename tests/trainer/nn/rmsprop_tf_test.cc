#include "trainer/nn/rmsprop_tf.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

// loss = sum(w^2) / 2, so the gradient is w itself.
void Backward(const torch::Tensor& w) {
  if (w.grad().defined()) w.grad().zero_();
  (w.square().sum() / 2).backward();
}

TEST(RmsPropTfTest, FirstStepByHand) {
  torch::Tensor w = torch::tensor({1.0, -2.0}, torch::kDouble).requires_grad_(true);
  RmsPropTf optimizer({w}, RmsPropTfOptions(0.1));
  Backward(w);
  optimizer.step();
  // g = w0. ms = 0.9 * 1 + 0.1 * g^2 (ms starts at one);
  // mom = 0 + 0.1 * g / sqrt(ms + 1.0); w1 = w0 - mom.
  //   w0 =  1: ms = 1.0, mom = 0.1 / sqrt(2)   = 0.0707107 -> w1 =  0.9292893
  //   w0 = -2: ms = 1.3, mom = -0.2 / sqrt(2.3) = -0.1318760 -> w1 = -1.8681240
  EXPECT_NEAR(w[0].item<double>(), 0.9292893, 1e-7);
  EXPECT_NEAR(w[1].item<double>(), -1.8681240, 1e-7);
  const RmsPropTfParamState* state = optimizer.StateOf(w);
  ASSERT_NE(state, nullptr);
  EXPECT_EQ(state->step(), 1);
  EXPECT_NEAR(state->mean_square()[1].item<double>(), 1.3, 1e-12);
  EXPECT_NEAR(state->momentum_buffer()[0].item<double>(), 0.1 / std::sqrt(2.0), 1e-12);
}

TEST(RmsPropTfTest, FollowsTheClosedFormForSeveralStepsWithChangingRates) {
  const std::vector<double> start = {1.0, -2.0, 0.5, 3.0};
  const std::vector<double> rates = {0.1, 0.1, 0.05, 0.05, 0.2, 0.01};
  const double decay = 0.8, momentum = 0.7, epsilon = 0.5;
  torch::Tensor w = torch::tensor(start, torch::kDouble).requires_grad_(true);
  RmsPropTf optimizer({w},
                      RmsPropTfOptions(rates[0]).decay(decay).momentum(momentum).epsilon(epsilon));

  std::vector<double> x = start, ms(start.size(), 1.0), mom(start.size(), 0.0);
  for (double lr : rates) {
    for (size_t i = 0; i < x.size(); ++i) {
      const double g = x[i];
      ms[i] = decay * ms[i] + (1 - decay) * g * g;
      mom[i] = momentum * mom[i] + lr * g / std::sqrt(ms[i] + epsilon);
      x[i] -= mom[i];
    }
    optimizer.SetLearningRate(lr);
    Backward(w);
    optimizer.step();
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(w[i].item<double>(), x[i], 1e-12) << i;
  }
}

TEST(RmsPropTfTest, DiffersFromTorchRmsProp) {
  // Same hyper-parameters, same problem: torch starts its mean square at 0
  // and adds epsilon outside the square root.
  torch::Tensor a = torch::tensor({1.0}, torch::kDouble).requires_grad_(true);
  torch::Tensor b = torch::tensor({1.0}, torch::kDouble).requires_grad_(true);
  RmsPropTf tf_style({a}, RmsPropTfOptions(0.1).decay(0.9).momentum(0.9).epsilon(1.0));
  torch::optim::RMSprop torch_style(
      {b}, torch::optim::RMSpropOptions(0.1).alpha(0.9).momentum(0.9).eps(1.0));
  Backward(a);
  tf_style.step();
  Backward(b);
  torch_style.step();
  // TF:    1 - 0.1 * 1 / sqrt(1.0 + 1)    = 0.929289
  // torch: 1 - 0.1 * 1 / (sqrt(0.1) + 1)  = 0.924018
  EXPECT_NEAR(a.item<double>(), 1.0 - 0.1 / std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(b.item<double>(), 1.0 - 0.1 / (std::sqrt(0.1) + 1.0), 1e-12);
  EXPECT_GT(std::abs(a.item<double>() - b.item<double>()), 5e-3);
}

TEST(RmsPropTfTest, SkipsParametersWithoutGradient) {
  torch::Tensor used = torch::ones({2}).requires_grad_(true);
  torch::Tensor unused = torch::ones({2}).requires_grad_(true);
  RmsPropTf optimizer({used, unused});
  Backward(used);
  optimizer.step();
  EXPECT_NE(optimizer.StateOf(used), nullptr);
  EXPECT_EQ(optimizer.StateOf(unused), nullptr);
  EXPECT_TRUE(torch::equal(unused, torch::ones({2})));
}

TEST(RmsPropTfTest, ClearGradientsDropsThem) {
  torch::Tensor w = torch::ones({2}).requires_grad_(true);
  RmsPropTf optimizer({w});
  Backward(w);
  ASSERT_TRUE(w.grad().defined());
  optimizer.ClearGradients();
  EXPECT_FALSE(w.grad().defined());
  (w.sum() * 3).backward();  // written, not added to the old gradient
  EXPECT_TRUE(torch::equal(w.grad(), torch::full({2}, 3.0f)));
}

TEST(RmsPropTfTest, LearningRateThroughTheBaseInterface) {
  torch::Tensor w = torch::ones({1}).requires_grad_(true);
  RmsPropTf optimizer({w}, RmsPropTfOptions(0.3));
  EXPECT_DOUBLE_EQ(optimizer.param_groups()[0].options().get_lr(), 0.3);
  optimizer.SetLearningRate(0.02);
  EXPECT_DOUBLE_EQ(optimizer.param_groups()[0].options().get_lr(), 0.02);
}

TEST(RmsPropTfTest, StateRoundTripsThroughAnArchive) {
  auto make = [] {
    return std::vector<torch::Tensor>{
        torch::tensor({1.0, -2.0}, torch::kDouble).requires_grad_(true),
        torch::tensor({{0.5, 3.0}}, torch::kDouble).requires_grad_(true)};
  };
  std::vector<torch::Tensor> first = make();
  RmsPropTf original(first, RmsPropTfOptions(0.1).decay(0.85));
  for (int step = 0; step < 3; ++step) {
    for (auto& p : first) Backward(p);
    original.step();
  }
  original.SetLearningRate(0.04);
  std::stringstream stream;
  {
    torch::serialize::OutputArchive archive;
    original.save(archive);
    archive.save_to(stream);
  }

  // A fresh optimizer over new tensors holding the same values.
  std::vector<torch::Tensor> second = make();
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < first.size(); ++i) second[i].copy_(first[i]);
  }
  RmsPropTf restored(second);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(stream);
    restored.load(archive);
  }
  const auto& options = static_cast<const RmsPropTfOptions&>(restored.param_groups()[0].options());
  EXPECT_DOUBLE_EQ(options.lr(), 0.04);
  EXPECT_DOUBLE_EQ(options.decay(), 0.85);
  for (size_t i = 0; i < first.size(); ++i) {
    const RmsPropTfParamState* a = original.StateOf(first[i]);
    const RmsPropTfParamState* b = restored.StateOf(second[i]);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->step(), 3);
    EXPECT_TRUE(torch::equal(a->mean_square(), b->mean_square()));
    EXPECT_TRUE(torch::equal(a->momentum_buffer(), b->momentum_buffer()));
  }
  // And both go on identically.
  for (int step = 0; step < 2; ++step) {
    for (auto& p : first) Backward(p);
    original.step();
    for (auto& p : second) Backward(p);
    restored.step();
  }
  for (size_t i = 0; i < first.size(); ++i) EXPECT_TRUE(torch::equal(first[i], second[i]));
}

TEST(RmsPropTfTest, LoadRejectsAnotherModelsState) {
  torch::Tensor w = torch::ones({3}).requires_grad_(true);
  RmsPropTf original({w});
  Backward(w);
  original.step();
  torch::serialize::OutputArchive out;
  original.save(out);
  std::stringstream stream;
  out.save_to(stream);

  torch::Tensor other = torch::ones({4}).requires_grad_(true);
  RmsPropTf mismatched({other});
  torch::serialize::InputArchive in;
  in.load_from(stream);
  try {
    mismatched.load(in);
    FAIL() << "no throw";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig);
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
  EXPECT_EQ(mismatched.StateOf(other), nullptr);  // unchanged
}

}  // namespace
}  // namespace retrain::trainer
