#include "trainer/nn/loss.h"

#include <string>

#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

void CheckLabels(const torch::Tensor& logits, const torch::Tensor& labels) {
  if (logits.dim() != 2 || labels.dim() != 1 || labels.size(0) != logits.size(0)) {
    throw TrainerError(TrainerError::Kind::kInternal,
                       "loss: logits must be [N, C] and labels [N]; got logits " +
                           c10::str(logits.sizes()) + " and labels " + c10::str(labels.sizes()));
  }
  if (!labels.device().is_cpu() || labels.numel() == 0) return;
  const int64_t num_classes = logits.size(1);
  const int64_t low = labels.min().item<int64_t>();
  const int64_t high = labels.max().item<int64_t>();
  if (low < 0 || high >= num_classes) {
    throw TrainerError(TrainerError::Kind::kData,
                       "label " + std::to_string(low < 0 ? low : high) +
                           " is outside the model's " + std::to_string(num_classes) +
                           " classes [0, " + std::to_string(num_classes - 1) +
                           "]: the dataset has more labels than the model was created for");
  }
}

}  // namespace

torch::Tensor SmoothedCrossEntropy(const torch::Tensor& logits, const torch::Tensor& labels,
                                   double label_smoothing) {
  CheckLabels(logits, labels);
  const torch::Tensor log_probs = torch::log_softmax(logits.to(torch::kFloat), /*dim=*/1);
  // sum_c t_c * log p_c = (1 - ls) * log p_label + (ls / C) * sum_c log p_c
  const torch::Tensor label_term =
      log_probs.gather(1, labels.to(torch::kLong).unsqueeze(1)).squeeze(1);
  const torch::Tensor uniform_term = log_probs.mean(/*dim=*/1);
  return -((1.0 - label_smoothing) * label_term + label_smoothing * uniform_term).mean();
}

torch::Tensor L2Regularization(const std::vector<torch::Tensor>& weights, double weight_decay) {
  if (weights.empty()) return torch::zeros({});
  torch::Tensor sum = weights[0].to(torch::kFloat).square().sum();
  for (size_t i = 1; i < weights.size(); ++i)
    sum = sum + weights[i].to(torch::kFloat).square().sum();
  return sum * (weight_decay / 2.0);
}

LossTerms ComputeLoss(const Model& model, const ModelOutput& output, const torch::Tensor& labels,
                      const LossOptions& options) {
  LossTerms terms;
  terms.cross_entropy = SmoothedCrossEntropy(output.logits, labels, options.label_smoothing);
  terms.total = terms.cross_entropy;
  if (output.aux_logits.defined()) {
    terms.aux_cross_entropy = options.aux_weight * SmoothedCrossEntropy(output.aux_logits, labels,
                                                                        options.label_smoothing);
    terms.total = terms.total + terms.aux_cross_entropy;
  } else {
    terms.aux_cross_entropy = torch::zeros({}, output.logits.options().dtype(torch::kFloat));
  }
  if (options.weight_decay != 0.0) {
    terms.regularization = L2Regularization(model.DecayedWeights(), options.weight_decay);
    terms.total = terms.total + terms.regularization;
  } else {
    terms.regularization = torch::zeros({}, output.logits.options().dtype(torch::kFloat));
  }
  return terms;
}

}  // namespace retrain::trainer
