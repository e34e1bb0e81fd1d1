#include "trainer/nn/moving_average.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>
#include <string>

#include "trainer/nn/model.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

// One parameter, one float buffer, one integer buffer.
struct Tiny : torch::nn::Module {
  Tiny() {
    w = register_parameter("w", torch::tensor({1.0, 2.0}, torch::kDouble));
    stat = register_buffer("stat", torch::tensor({10.0}, torch::kDouble));
    count = register_buffer("count", torch::tensor({0}, torch::kLong));
  }
  void Set(double w0, double w1, double s, int64_t n) {
    torch::NoGradGuard no_grad;
    w.copy_(torch::tensor({w0, w1}, torch::kDouble));
    stat.fill_(s);
    count.fill_(n);
  }
  torch::Tensor w, stat, count;
};

TEST(MovingAverageTest, DecayWarmsUpToItsCap) {
  EXPECT_DOUBLE_EQ(ExponentialMovingAverage::Decay(0), 0.1);
  EXPECT_DOUBLE_EQ(ExponentialMovingAverage::Decay(10), 11.0 / 20.0);
  EXPECT_DOUBLE_EQ(ExponentialMovingAverage::Decay(1000), 1001.0 / 1010.0);
  EXPECT_DOUBLE_EQ(ExponentialMovingAverage::Decay(89990), 0.9999);  // 89991/90000 = 0.9999
  EXPECT_DOUBLE_EQ(ExponentialMovingAverage::Decay(10000000), 0.9999);
  EXPECT_DOUBLE_EQ(ExponentialMovingAverage::Decay(10000000, 0.99), 0.99);
}

TEST(MovingAverageTest, ValuesAfterAFewSteps) {
  Tiny model;
  ExponentialMovingAverage ema(model);
  // shadow starts at the value: w = {1, 2}, stat = 10.
  model.Set(3.0, 2.0, 20.0, 1);
  ema.Apply(0);  // decay 0.1: 0.1 * 1 + 0.9 * 3 = 2.8; stat 0.1 * 10 + 0.9 * 20 = 19
  EXPECT_NEAR(ema.Average("w")[0].item<double>(), 2.8, 1e-12);
  EXPECT_NEAR(ema.Average("w")[1].item<double>(), 2.0, 1e-12);
  EXPECT_NEAR(ema.Average("stat").item<double>(), 19.0, 1e-12);
  model.Set(5.0, 2.0, 0.0, 2);
  ema.Apply(1);  // decay 2/11: 2/11 * 2.8 + 9/11 * 5 = 4.6
  EXPECT_NEAR(ema.Average("w")[0].item<double>(), 4.6, 1e-12);
  EXPECT_NEAR(ema.Average("stat").item<double>(), 19.0 * 2 / 11, 1e-12);
  ema.Apply(2);  // decay 3/12: 0.25 * 4.6 + 0.75 * 5 = 4.9
  EXPECT_NEAR(ema.Average("w")[0].item<double>(), 4.9, 1e-12);
  EXPECT_FALSE(ema.Average("count").defined());  // integer buffers are not averaged
}

TEST(MovingAverageTest, BuffersCanBeCopiedInsteadOfAveraged) {
  Tiny model, target;
  MovingAverageOptions options;
  options.average_buffers = false;
  ExponentialMovingAverage ema(model, options);
  EXPECT_FALSE(ema.Average("stat").defined());
  model.Set(3.0, 2.0, 20.0, 7);
  ema.Apply(0);
  ema.CopyTo(target);
  EXPECT_NEAR(target.w[0].item<double>(), 2.8, 1e-12);
  EXPECT_EQ(target.stat.item<double>(), 20.0);  // as the model has it
  EXPECT_EQ(target.count.item<int64_t>(), 7);
}

TEST(MovingAverageTest, CopyToAndSwap) {
  Tiny model, target;
  ExponentialMovingAverage ema(model);
  model.Set(3.0, 4.0, 20.0, 5);
  ema.Apply(0);
  ema.CopyTo(target);
  EXPECT_NEAR(target.w[0].item<double>(), 2.8, 1e-12);
  EXPECT_NEAR(target.w[1].item<double>(), 3.8, 1e-12);
  EXPECT_NEAR(target.stat.item<double>(), 19.0, 1e-12);
  EXPECT_EQ(target.count.item<int64_t>(), 5);

  ema.Swap();
  EXPECT_NEAR(model.w[0].item<double>(), 2.8, 1e-12);
  EXPECT_NEAR(model.stat.item<double>(), 19.0, 1e-12);
  EXPECT_EQ(model.count.item<int64_t>(), 5);
  ema.Swap();
  EXPECT_EQ(model.w[0].item<double>(), 3.0);
  EXPECT_EQ(model.stat.item<double>(), 20.0);
  EXPECT_NEAR(ema.Average("w")[0].item<double>(), 2.8, 1e-12);
}

TEST(MovingAverageTest, CopyToRejectsAnotherArchitecture) {
  ModelPtr small = CreateModel("small", 10);
  ModelPtr other = CreateModel("small", 3);
  ExponentialMovingAverage ema(*small);
  try {
    ema.CopyTo(*other);
    FAIL() << "no throw";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig);
    EXPECT_NE(std::string(e.what()).find("fc."), std::string::npos) << e.what();
  }
}

TEST(MovingAverageTest, StateRoundTripsThroughAnArchive) {
  torch::manual_seed(0);
  ModelPtr model = CreateModel("small", 10);
  ExponentialMovingAverage ema(*model);
  for (int64_t step = 0; step < 3; ++step) {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(0.01);
    for (auto& b : model->buffers()) {
      if (b.is_floating_point()) b.add_(0.5);
    }
    ema.Apply(step);
  }
  std::stringstream stream;
  {
    torch::serialize::OutputArchive archive;
    ema.save(archive);
    archive.save_to(stream);
  }
  ModelPtr fresh = CreateModel("small", 10);
  ExponentialMovingAverage restored(*fresh);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(stream);
    restored.load(archive);
  }
  for (const auto& item : model->named_parameters()) {
    EXPECT_TRUE(torch::equal(ema.Average(item.key()), restored.Average(item.key()))) << item.key();
  }
  EXPECT_TRUE(torch::equal(ema.Average("bn1.running_mean"), restored.Average("bn1.running_mean")));

  // A model of another class count does not take it.
  ModelPtr other = CreateModel("small", 4);
  ExponentialMovingAverage mismatched(*other);
  const torch::Tensor before = mismatched.Average("conv1.weight").clone();
  stream.clear();
  stream.seekg(0);
  torch::serialize::InputArchive archive;
  archive.load_from(stream);
  EXPECT_THROW(mismatched.load(archive), TrainerError);
  EXPECT_TRUE(torch::equal(mismatched.Average("conv1.weight"), before));
}

}  // namespace
}  // namespace retrain::trainer
