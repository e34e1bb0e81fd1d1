#include "trainer/nn/loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "trainer/nn/model.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

// -sum_c t_c log softmax(z)_c with t = (1 - ls) onehot + ls / C, in doubles.
double HandCrossEntropy(const std::vector<double>& z, int label, double ls) {
  double max = z[0];
  for (double v : z) max = std::max(max, v);
  double sum = 0;
  for (double v : z) sum += std::exp(v - max);
  const double log_sum = max + std::log(sum);
  double loss = 0;
  for (size_t c = 0; c < z.size(); ++c) {
    const double target = (static_cast<int>(c) == label ? 1.0 - ls : 0.0) + ls / z.size();
    loss -= target * (z[c] - log_sum);
  }
  return loss;
}

TEST(SmoothedCrossEntropyTest, MatchesAHandComputation) {
  const std::vector<double> row0 = {1.0, 2.0, 3.0}, row1 = {0.5, -1.0, 0.0};
  const torch::Tensor logits = torch::tensor({1.0, 2.0, 3.0, 0.5, -1.0, 0.0}).view({2, 3});
  const torch::Tensor labels = torch::tensor({0, 2}, torch::kLong);
  // Row 0: log-sum-exp = 3.4076059; log p = {-2.4076059, -1.4076059, -0.4076059};
  // targets {0.9333, 0.0333, 0.0333} -> 2.2470990 + 0.0469202 + 0.0135869 = 2.3076061.
  EXPECT_NEAR(HandCrossEntropy(row0, 0, 0.1), 2.3076059, 1e-6);
  const double expected = (HandCrossEntropy(row0, 0, 0.1) + HandCrossEntropy(row1, 2, 0.1)) / 2;
  EXPECT_NEAR(SmoothedCrossEntropy(logits, labels, 0.1).item<double>(), expected, 1e-6);
}

TEST(SmoothedCrossEntropyTest, EqualsCrossEntropyAgainstExplicitSmoothedTargets) {
  torch::manual_seed(3);
  const torch::Tensor logits = torch::randn({5, 7}, torch::kDouble);
  const torch::Tensor labels = torch::tensor({0, 6, 3, 3, 1}, torch::kLong);
  const double ls = 0.1;
  const torch::Tensor targets = (1 - ls) * torch::one_hot(labels, 7).to(torch::kDouble) + ls / 7;
  const torch::Tensor expected = -(targets * torch::log_softmax(logits, 1)).sum(1).mean();
  // Computed in float32.
  EXPECT_NEAR(SmoothedCrossEntropy(logits, labels, ls).item<double>(), expected.item<double>(),
              1e-6);
  // Without smoothing it is plain cross-entropy.
  EXPECT_NEAR(SmoothedCrossEntropy(logits, labels, 0.0).item<double>(),
              torch::nn::functional::cross_entropy(logits, labels).item<double>(), 1e-6);
}

TEST(SmoothedCrossEntropyTest, RejectsLabelsOutsideTheClasses) {
  const torch::Tensor logits = torch::zeros({2, 3});
  try {
    SmoothedCrossEntropy(logits, torch::tensor({0, 3}, torch::kLong), 0.1);
    FAIL() << "no throw";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kData);
    EXPECT_NE(std::string(e.what()).find("label 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(SmoothedCrossEntropy(logits, torch::tensor({-1, 0}, torch::kLong), 0.1),
               TrainerError);
}

TEST(L2RegularizationTest, IsHalfTheSumOfSquaresTimesTheDecay) {
  const std::vector<torch::Tensor> weights = {torch::tensor({1.0, 2.0}), torch::tensor({{3.0}})};
  // (1 + 4 + 9) / 2 * 4e-5 = 2.8e-4
  EXPECT_NEAR(L2Regularization(weights, 4e-5).item<double>(), 2.8e-4, 1e-10);
  EXPECT_EQ(L2Regularization({}, 4e-5).item<double>(), 0.0);
}

TEST(ComputeLossTest, SumsMainAuxiliaryAndWeightDecayTerms) {
  torch::manual_seed(1);
  ModelPtr model = CreateModel("small", 4);
  ModelOutput output;
  output.logits = torch::randn({3, 4});
  output.aux_logits = torch::randn({3, 4});
  const torch::Tensor labels = torch::tensor({1, 0, 3}, torch::kLong);
  const LossTerms terms = ComputeLoss(*model, output, labels);

  const double main = SmoothedCrossEntropy(output.logits, labels, 0.1).item<double>();
  const double aux = SmoothedCrossEntropy(output.aux_logits, labels, 0.1).item<double>();
  double squares = 0;
  int weights = 0;
  for (const auto& item : model->named_parameters()) {
    if (item.value().dim() < 2) continue;  // biases and batch norm: no decay
    squares += item.value().square().sum().item<double>();
    ++weights;
  }
  EXPECT_EQ(weights, 5);  // four convolutions and the logits layer
  EXPECT_NEAR(terms.cross_entropy.item<double>(), main, 1e-6);
  EXPECT_NEAR(terms.aux_cross_entropy.item<double>(), 0.4 * aux, 1e-6);
  EXPECT_NEAR(terms.regularization.item<double>(), 4e-5 * squares / 2, 1e-9);
  EXPECT_NEAR(terms.total.item<double>(), main + 0.4 * aux + 4e-5 * squares / 2, 1e-5);
}

TEST(ComputeLossTest, WeightDecayGradientIsDecayTimesWeight) {
  ModelPtr model = CreateModel("small", 4);
  ModelOutput output;
  output.logits = torch::zeros({2, 4}, torch::requires_grad());
  const LossTerms terms = ComputeLoss(*model, output, torch::tensor({0, 1}, torch::kLong));
  EXPECT_EQ(terms.aux_cross_entropy.item<double>(), 0.0);
  terms.total.backward();
  for (const auto& item : model->named_parameters()) {
    if (model->IsDecayedWeight(item.key())) {
      EXPECT_TRUE(torch::allclose(item.value().grad(), 4e-5 * item.value())) << item.key();
    } else {
      EXPECT_FALSE(item.value().grad().defined() &&
                   item.value().grad().abs().sum().item<double>() > 0)
          << item.key();
    }
  }
}

TEST(ComputeLossTest, OptionsChangeEachTerm) {
  ModelPtr model = CreateModel("small", 2);
  ModelOutput output;
  output.logits = torch::tensor({{2.0f, 0.0f}});
  output.aux_logits = torch::tensor({{0.0f, 2.0f}});
  LossOptions options;
  options.label_smoothing = 0;
  options.aux_weight = 1.0;
  options.weight_decay = 0;
  const LossTerms terms = ComputeLoss(*model, output, torch::tensor({0}, torch::kLong), options);
  const double easy = std::log(1 + std::exp(-2.0)), hard = std::log(1 + std::exp(2.0));
  EXPECT_NEAR(terms.total.item<double>(), easy + hard, 1e-6);
  EXPECT_EQ(terms.regularization.item<double>(), 0.0);
}

}  // namespace
}  // namespace retrain::trainer
