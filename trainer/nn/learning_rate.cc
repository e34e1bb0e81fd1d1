#include "trainer/nn/learning_rate.h"

#include <cmath>
#include <string>

#include "trainer/trainer_error.h"

namespace retrain::trainer {

double StaircaseLearningRate(int64_t step, double initial, int64_t decay_steps, double factor) {
  if (decay_steps < 1) {
    throw TrainerError(
        TrainerError::Kind::kConfig,
        "learning-rate decay steps must be at least 1, got " + std::to_string(decay_steps));
  }
  if (step < 0) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       "learning-rate step must not be negative, got " + std::to_string(step));
  }
  return initial * std::pow(factor, static_cast<double>(step / decay_steps));
}

int64_t DecaySteps(int64_t examples_per_epoch, int batch_size, double num_epochs_per_decay) {
  if (batch_size < 1) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       "--batch_size must be at least 1, got " + std::to_string(batch_size));
  }
  if (examples_per_epoch < 0) {
    throw TrainerError(
        TrainerError::Kind::kConfig,
        "examples per epoch must not be negative, got " + std::to_string(examples_per_epoch));
  }
  if (!(num_epochs_per_decay > 0.0)) {
    throw TrainerError(
        TrainerError::Kind::kConfig,
        "--num_epochs_per_decay must be positive, got " + std::to_string(num_epochs_per_decay));
  }
  const double steps = static_cast<double>(examples_per_epoch) / batch_size * num_epochs_per_decay;
  const auto truncated = static_cast<int64_t>(steps);
  return truncated < 1 ? 1 : truncated;
}

}  // namespace retrain::trainer
