// Exponential moving average of a model's weights, which the reference
// evaluates with (tf.train.ExponentialMovingAverage(0.9999, global_step)):
//
//   decay  = min(max_decay, (1 + step) / (10 + step))
//   shadow = decay * shadow + (1 - decay) * value
//
// What it averages: every parameter and, by default, every floating-point
// buffer too. The reference averages `trainable_variables() +
// moving_average_variables()`, i.e. also the batch-norm moving mean and
// variance, which are themselves moving averages (its comment calls this a
// "double-average", kept for compatibility with its checkpoints). With
// `average_buffers = false` the buffers are taken as they are instead.
// Integer buffers (num_batches_tracked) are never averaged.
//
// The shadows live on the model's device at construction: construct after
// loading pretrained weights and after moving the model to its device. Not
// thread-safe; Apply() runs after the optimizer step, on the training thread.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace retrain::trainer {

struct MovingAverageOptions {
  // Upper bound of the decay (the reference's MOVING_AVERAGE_DECAY).
  double max_decay = 0.9999;
  // Average floating-point buffers (batch-norm statistics) as the reference
  // does; false copies them from the model instead.
  bool average_buffers = true;
};

class ExponentialMovingAverage {
 public:
  // Tracks `model`'s parameters and buffers (by name, recursively); the
  // shadows start as copies of their current values. The model must outlive
  // this object and keep its module tree.
  explicit ExponentialMovingAverage(torch::nn::Module& model, MovingAverageOptions options = {});

  // min(max_decay, (1 + step) / (10 + step)).
  static double Decay(int64_t step, double max_decay = 0.9999);

  // One update after the optimizer's step number `step` (0 for the first),
  // the reference's global_step.
  void Apply(int64_t step);

  // Writes the averages into `target`, a module of the same architecture
  // (e.g. a second CreateModel() of the same name and class count, for
  // evaluation): parameters and averaged buffers get their shadows, other
  // buffers the tracked model's current values. Throws TrainerError(kConfig)
  // when names or shapes differ.
  void CopyTo(torch::nn::Module& target) const;

  // Exchanges the tracked model's averaged tensors with their shadows, in
  // place: evaluate in between, then Swap() again to go on training.
  void Swap();

  // The shadow of the named parameter or buffer; undefined when it is not
  // averaged. For tests and diagnostics.
  torch::Tensor Average(const std::string& name) const;

  // Checkpointing: the names and shadows. load() throws TrainerError(kConfig)
  // when the archive's names or shapes differ from the tracked model's, and
  // changes nothing then.
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  struct Entry {
    std::string name;
    torch::Tensor value;   // the model's own tensor
    torch::Tensor shadow;  // undefined when not averaged
  };

  const MovingAverageOptions options_;
  std::vector<Entry> entries_;
  // The averaged entries' tensors, for multi-tensor updates.
  std::vector<torch::Tensor> averaged_values_;
  std::vector<torch::Tensor> shadows_;
};

}  // namespace retrain::trainer
