// The reference's training loss (inception_train.py / slim losses):
//   total = CE_ls(logits) + aux_weight * CE_ls(aux_logits)
//           + weight_decay * sum over decayed weights of sum(w^2) / 2
// where CE_ls is the batch mean of softmax cross-entropy against
// label-smoothed targets (1 - ls) * onehot + ls / num_classes.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "trainer/nn/model.h"

namespace retrain::trainer {

struct LossOptions {
  // Share of the target mass spread evenly over all classes.
  double label_smoothing = 0.1;
  // Weight of the auxiliary head's cross-entropy (models that have one).
  double aux_weight = 0.4;
  // L2 coefficient on Model::DecayedWeights(), applied to sum(w^2) / 2.
  double weight_decay = 4e-5;
};

// Scalar (0-dim float) tensors; `total` carries the graph for backward().
struct LossTerms {
  torch::Tensor total;
  torch::Tensor cross_entropy;      // of the main logits
  torch::Tensor aux_cross_entropy;  // weighted by aux_weight; 0 when no aux logits
  torch::Tensor regularization;     // weight_decay * sum(w^2) / 2
};

// Mean over the batch of -sum_c t_c * log_softmax(logits)_c with
// t = (1 - label_smoothing) * onehot(labels) + label_smoothing / C.
// logits: [N, C] (computed in float32 whatever their type); labels: [N]
// integer class indices in [0, C). Labels on the CPU are range-checked
// (TrainerError kData); on an accelerator an out-of-range label is a device
// assertion, so check them before moving them there.
torch::Tensor SmoothedCrossEntropy(const torch::Tensor& logits, const torch::Tensor& labels,
                                   double label_smoothing);

// weight_decay * sum_i sum(w_i^2) / 2 (TF's l2_loss); a 0 scalar for no weights.
torch::Tensor L2Regularization(const std::vector<torch::Tensor>& weights, double weight_decay);

// All terms for one forward pass of `model` (whose DecayedWeights() it uses).
LossTerms ComputeLoss(const Model& model, const ModelOutput& output, const torch::Tensor& labels,
                      const LossOptions& options = {});

}  // namespace retrain::trainer
