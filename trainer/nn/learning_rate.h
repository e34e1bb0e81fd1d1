// The reference's learning-rate schedule (tf.train.exponential_decay with
// staircase=True). Pure functions: no LibTorch in this header.
#pragma once

#include <cstdint>

namespace retrain::trainer {

// initial * factor ^ floor(step / decay_steps). Throws TrainerError(kConfig)
// when decay_steps < 1 or step < 0.
double StaircaseLearningRate(int64_t step, double initial, int64_t decay_steps, double factor);

// int(examples_per_epoch / batch_size * num_epochs_per_decay), with true
// (Python 3) division, and at least 1 so that tiny datasets still decay.
// Throws TrainerError(kConfig) when batch_size < 1, examples_per_epoch < 0
// or num_epochs_per_decay <= 0.
int64_t DecaySteps(int64_t examples_per_epoch, int batch_size, double num_epochs_per_decay);

}  // namespace retrain::trainer
