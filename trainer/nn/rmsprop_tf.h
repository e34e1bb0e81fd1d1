// TensorFlow's RMSProp (tf.train.RMSPropOptimizer with momentum, as the
// reference trains Inception), which is not torch::optim::RMSprop:
//
//   ms  = decay * ms + (1 - decay) * g^2          ms starts at 1, not 0
//   mom = momentum * mom + lr * g / sqrt(ms + epsilon)   epsilon inside sqrt
//   w  -= mom
//
// Reference values: decay 0.9, momentum 0.9, epsilon 1.0; the learning rate
// follows StaircaseLearningRate() and is set before each step.
//
// Works with LibTorch 1.13 and 2.x: it keeps its per-parameter state in the
// base class's state() map and saves it in its own format (by parameter
// position, not by TensorImpl address), so a checkpoint written by one
// LibTorch version loads in the other. Not thread-safe (as every torch
// optimizer); step() runs under NoGradGuard.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace retrain::trainer {

struct RmsPropTfOptions : public torch::optim::OptimizerCloneableOptions<RmsPropTfOptions> {
  RmsPropTfOptions(double lr = 0.1);  // NOLINT(google-explicit-constructor): torch's pattern
  TORCH_ARG(double, lr) = 0.1;
  TORCH_ARG(double, decay) = 0.9;
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, epsilon) = 1.0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

struct RmsPropTfParamState
    : public torch::optim::OptimizerCloneableParamState<RmsPropTfParamState> {
  // Steps applied to this parameter.
  TORCH_ARG(int64_t, step) = 0;
  // ms: running mean of g^2, same shape as the parameter.
  TORCH_ARG(torch::Tensor, mean_square);
  // mom: the last update, same shape as the parameter.
  TORCH_ARG(torch::Tensor, momentum_buffer);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class RmsPropTf : public torch::optim::Optimizer {
 public:
  explicit RmsPropTf(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                     RmsPropTfOptions defaults = {});
  explicit RmsPropTf(std::vector<torch::Tensor> params, RmsPropTfOptions defaults = {});

  // One update of every parameter that has a gradient (others are skipped
  // and keep their state). A parameter's state is created at its first
  // update: ms = 1, mom = 0.
  torch::Tensor step(LossClosure closure = nullptr) override;

  // The learning rate of every parameter group, for the next step().
  void SetLearningRate(double lr);

  // Drops every parameter's gradient (zero_grad(set_to_none=true) in any
  // LibTorch version; 1.13's zero_grad() fills zeros instead): the next
  // backward() writes gradients rather than adding to zeros. Use it instead
  // of zero_grad() between steps.
  void ClearGradients();

  // The state of `param`, or nullptr before its first update.
  const RmsPropTfParamState* StateOf(const torch::Tensor& param) const;

  // Checkpointing (also reached through torch::save / torch::load): the
  // options of each group and the state of each parameter, keyed by group
  // and position. load() replaces the current state and options; it throws
  // TrainerError(kConfig) when the archive's groups, parameter counts or
  // shapes differ from this optimizer's (a checkpoint of another model).
  // Loaded state moves to each parameter's device.
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
};

}  // namespace retrain::trainer
