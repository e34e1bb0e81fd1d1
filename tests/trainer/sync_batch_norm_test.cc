// Synchronised batch norm over two Gloo ranks (threads of this process):
// each normalising half of a batch ends where one layer normalising the
// whole batch does, forward and backward.
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "tests/support/process.h"
#include "trainer/distributed/batch_norm_sync.h"

namespace retrain::trainer {
namespace {

using retrain::testing::FreePort;

struct Outcome {
  torch::Tensor output, grad_input, grad_weight, grad_bias, running_mean, running_var;
};

// A training-mode layer over `input` with upstream gradient `grad`.
Outcome RunLayer(Norm2d& layer, const torch::Tensor& input, const torch::Tensor& grad) {
  torch::Tensor x = input.clone().requires_grad_(true);
  torch::Tensor y = layer(x);
  (y * grad).sum().backward();
  return {y.detach(),           x.grad(),
          layer->weight.grad().clone(), layer->bias.grad().clone(),
          layer->running_mean.clone(),  layer->running_var.clone()};
}

// The same layer every time (no random stream: ranks run on threads).
Norm2d MakeLayer() {
  Norm2d layer(torch::nn::BatchNorm2dOptions(4).eps(0.001).momentum(0.1));
  torch::NoGradGuard no_grad;
  layer->weight.copy_(torch::arange(4) * 0.25 + 0.5);
  layer->bias.copy_(torch::arange(4) * 0.2 - 0.3);
  return layer;
}

// The two halves of the batch, each normalised by its own rank.
std::vector<Outcome> RunOnTwoRanks(const torch::Tensor& input, const torch::Tensor& grad,
                                   bool synchronised) {
  const int port = FreePort();
  std::vector<Outcome> out(2);
  // Each rank's connection outlives both threads: unsynchronised, a rank
  // that is done would otherwise close its side while the other still
  // connects to it.
  std::vector<std::unique_ptr<Communicator>> comms(2);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    ranks.emplace_back([&, rank] {
      RankOptions options;
      options.rank = rank;
      options.world_size = 2;
      options.master_port = port;
      options.collective_timeout_secs = 60;
      comms[rank] = Communicator::Connect(options);
      Norm2d layer = MakeLayer();
      if (synchronised) {
        SynchroniseBatchNorm(*layer, std::make_shared<CommunicatorBatchNormSync>(*comms[rank]));
      }
      out[rank] = RunLayer(layer, input.chunk(2)[rank], grad.chunk(2)[rank]);
    });
  }
  for (auto& t : ranks) t.join();
  return out;
}

bool Close(const torch::Tensor& a, const torch::Tensor& b) {
  return torch::allclose(a, b, /*rtol=*/1e-4, /*atol=*/1e-5);
}

TEST(SyncBatchNormTest, TwoRanksOfHalfTheBatchNormaliseAsOneRankOfTheWhole) {
  torch::manual_seed(11);
  // Halves with different statistics, so that per-rank normalisation differs.
  torch::Tensor input = torch::randn({8, 4, 5, 5});
  input.slice(0, 4, 8).mul_(3).add_(2);
  const torch::Tensor grad = torch::randn({8, 4, 5, 5});
  Norm2d whole = MakeLayer();
  const Outcome one = RunLayer(whole, input, grad);

  const std::vector<Outcome> two = RunOnTwoRanks(input, grad, /*synchronised=*/true);
  EXPECT_TRUE(Close(torch::cat({two[0].output, two[1].output}), one.output));
  EXPECT_TRUE(Close(torch::cat({two[0].grad_input, two[1].grad_input}), one.grad_input));
  // Each rank holds its share of the parameters' gradients; the sum (what
  // the gradient all-reduce forms, before it divides by the ranks) is the
  // whole batch's.
  EXPECT_TRUE(Close(two[0].grad_weight + two[1].grad_weight, one.grad_weight));
  EXPECT_TRUE(Close(two[0].grad_bias + two[1].grad_bias, one.grad_bias));
  for (const Outcome& rank : two) {
    EXPECT_TRUE(Close(rank.running_mean, one.running_mean));
    EXPECT_TRUE(Close(rank.running_var, one.running_var));
  }

  // Per rank (the default) each half is normalised on its own: different.
  const std::vector<Outcome> apart = RunOnTwoRanks(input, grad, /*synchronised=*/false);
  EXPECT_FALSE(Close(torch::cat({apart[0].output, apart[1].output}), one.output));
  EXPECT_FALSE(Close(apart[0].running_mean, one.running_mean));
}

TEST(SyncBatchNormTest, EvaluationUsesTheRunningStatistics) {
  Norm2d layer = MakeLayer();
  torch::NoGradGuard no_grad;
  layer->running_mean.fill_(0.5);
  layer->running_var.fill_(4);
  layer->eval();
  const torch::Tensor x = torch::randn({2, 4, 3, 3});
  const torch::Tensor expected =
      (x - 0.5) / std::sqrt(4 + 0.001) * layer->weight.view({1, -1, 1, 1}) +
      layer->bias.view({1, -1, 1, 1});
  EXPECT_TRUE(Close(layer(x), expected));
}

}  // namespace
}  // namespace retrain::trainer
