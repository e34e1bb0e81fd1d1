// Batch normalisation for the trainer's models: torch's BatchNorm2d (the
// same parameters and buffers under the same names, so checkpoints do not
// change, and the same arithmetic through torch::batch_norm) that can
// synchronise its batch statistics over the ranks of a data-parallel job.
//
// Per rank (the default, as the reference's towers) each rank normalises
// with the mean and variance of its own B/N examples. Synchronised, every
// rank normalises with those of the whole step's B examples, and the
// backward pass sums the two per-channel gradient terms over the ranks, so
// N ranks of B/N train as one rank of B would. Evaluation mode uses the
// running statistics either way.
#pragma once

#include <torch/torch.h>

#include <memory>

namespace retrain::trainer {

// Sums a tensor in place over every rank. Every rank calls it in the same
// order (the forward and backward passes of the same layers); it throws on
// failure.
class BatchNormSync {
 public:
  virtual ~BatchNormSync() = default;
  virtual void AllReduceSum(torch::Tensor& tensor) = 0;
  virtual int world_size() const = 0;
};

// Affine, with running statistics (momentum must be set: torch's default
// 0.1 is).
class Norm2dImpl : public torch::nn::Cloneable<Norm2dImpl> {
 public:
  explicit Norm2dImpl(const torch::nn::BatchNorm2dOptions& options);

  // Per-rank statistics unless a sync with more than one rank is set.
  torch::Tensor forward(const torch::Tensor& input);
  void set_sync(std::shared_ptr<BatchNormSync> sync) { sync_ = std::move(sync); }
  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  torch::nn::BatchNorm2dOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  std::shared_ptr<BatchNormSync> sync_;
};
TORCH_MODULE(Norm2d);

// Sets `sync` on every Norm2d below `module` (null: per-rank statistics);
// returns how many it set.
int SynchroniseBatchNorm(torch::nn::Module& module, const std::shared_ptr<BatchNormSync>& sync);

}  // namespace retrain::trainer
