#include "trainer/nn/model.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <utility>

#include "trainer/nn/batch_norm.h"
#include "trainer/nn/model_zoo.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

using Factory = std::function<ModelPtr(int num_classes)>;

const std::map<std::string, Factory>& Registry() {
  static const std::map<std::string, Factory> registry{
      {"inception_v3", detail::NewInceptionV3},
      {"linear", detail::NewLinear},
      {"resnet50", detail::NewResNet50},
      {"small", detail::NewSmallCnn},
  };
  return registry;
}

bool HasPrefix(const std::string& name, const std::string& module_path) {
  return name.size() > module_path.size() &&
         name.compare(0, module_path.size(), module_path) == 0 && name[module_path.size()] == '.';
}

}  // namespace

Model::Model(std::string model_name, int num_classes, std::vector<std::string> classifier_modules)
    : model_name_(std::move(model_name)),
      num_classes_(num_classes),
      classifier_modules_(std::move(classifier_modules)) {}

void Model::IndexParameters() {
  classifier_parameter_names_.clear();
  decayed_weight_names_.clear();
  for (const auto& item : named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    const torch::nn::Module& module = *item.value();
    const bool has_decayed_weight = module.as<torch::nn::Conv2dImpl>() != nullptr ||
                                    module.as<torch::nn::LinearImpl>() != nullptr;
    if (has_decayed_weight) decayed_weight_names_.insert(item.key() + ".weight");
  }
  for (const auto& item : named_parameters(/*recurse=*/true)) {
    for (const std::string& path : classifier_modules_) {
      if (HasPrefix(item.key(), path)) classifier_parameter_names_.push_back(item.key());
    }
  }
  std::sort(classifier_parameter_names_.begin(), classifier_parameter_names_.end());
  // Every classifier module must exist and hold parameters: a typo in a
  // subclass would otherwise make fine-tuning silently restore the logits.
  for (const std::string& path : classifier_modules_) {
    const bool found =
        std::any_of(classifier_parameter_names_.begin(), classifier_parameter_names_.end(),
                    [&](const std::string& n) { return HasPrefix(n, path); });
    if (!found) {
      throw TrainerError(TrainerError::Kind::kInternal,
                         "model " + model_name_ + " has no classifier module '" + path + "'");
    }
  }
}

bool Model::IsClassifierParameter(const std::string& name) const {
  return std::binary_search(classifier_parameter_names_.begin(), classifier_parameter_names_.end(),
                            name);
}

bool Model::IsDecayedWeight(const std::string& name) const {
  return decayed_weight_names_.count(name) > 0;
}

std::vector<torch::Tensor> Model::DecayedWeights() const {
  std::vector<torch::Tensor> weights;
  weights.reserve(decayed_weight_names_.size());
  for (const auto& item : named_parameters(/*recurse=*/true)) {
    if (IsDecayedWeight(item.key())) weights.push_back(item.value());
  }
  return weights;
}

std::vector<std::string> ModelNames() {
  std::vector<std::string> names;
  for (const auto& entry : Registry()) names.push_back(entry.first);
  return names;
}

ModelPtr CreateModel(const std::string& name, int num_classes) {
  const auto it = Registry().find(name);
  if (it == Registry().end()) {
    std::string known;
    for (const std::string& n : ModelNames()) known += (known.empty() ? "" : ", ") + n;
    throw TrainerError(TrainerError::Kind::kConfig,
                       "unknown model '" + name + "': choose one of " + known);
  }
  if (num_classes < 1) {
    throw TrainerError(
        TrainerError::Kind::kConfig,
        "model " + name + " needs at least 1 class, got " + std::to_string(num_classes));
  }
  ModelPtr model = it->second(num_classes);
  model->IndexParameters();
  model->train();
  return model;
}

namespace detail {

void TruncatedNormal_(torch::Tensor& tensor, double stddev) {
  // Inverse-CDF sampling of N(0, 1) restricted to [-2, 2]:
  // erf(2 / sqrt(2)) = P(|z| < 2).
  torch::NoGradGuard no_grad;
  const double bound = std::erf(2.0 / std::sqrt(2.0));
  tensor.uniform_(-bound, bound);
  tensor.erfinv_();
  tensor.mul_(stddev * std::sqrt(2.0));
  tensor.clamp_(-2.0 * stddev, 2.0 * stddev);  // guards the rounding at the ends
}

void KaimingInitialise_(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& module : model.modules(/*include_self=*/false)) {
    if (auto* conv = module->as<torch::nn::Conv2dImpl>()) {
      torch::nn::init::kaiming_normal_(conv->weight, /*a=*/0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = module->as<Norm2dImpl>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
    }
  }
}

}  // namespace detail
}  // namespace retrain::trainer
