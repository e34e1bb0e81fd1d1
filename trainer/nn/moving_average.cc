#include "trainer/nn/moving_average.h"

#include <algorithm>
#include <map>
#include <utility>

#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

constexpr char kAverageFormat[] = "retrain.ExponentialMovingAverage.v1";

[[noreturn]] void AverageMismatch(const std::string& what) {
  throw TrainerError(TrainerError::Kind::kConfig,
                     "weight averages do not fit this model: " + what +
                         " (a checkpoint or model of another architecture or class count)");
}

std::map<std::string, torch::Tensor> NamedTensors(torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> tensors;
  for (auto& item : module.named_parameters(/*recurse=*/true)) tensors[item.key()] = item.value();
  for (auto& item : module.named_buffers(/*recurse=*/true)) tensors[item.key()] = item.value();
  return tensors;
}

}  // namespace

ExponentialMovingAverage::ExponentialMovingAverage(torch::nn::Module& model,
                                                   MovingAverageOptions options)
    : options_(options) {
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    entries_.push_back({item.key(), item.value(), item.value().detach().clone()});
  }
  for (auto& item : model.named_buffers(/*recurse=*/true)) {
    const torch::Tensor& buffer = item.value();
    const bool averaged = options_.average_buffers && buffer.is_floating_point();
    entries_.push_back({item.key(), buffer, averaged ? buffer.clone() : torch::Tensor()});
  }
  for (const Entry& entry : entries_) {
    if (!entry.shadow.defined()) continue;
    averaged_values_.push_back(entry.value);
    shadows_.push_back(entry.shadow);
  }
}

double ExponentialMovingAverage::Decay(int64_t step, double max_decay) {
  const double warmup = (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step));
  return std::min(max_decay, warmup);
}

void ExponentialMovingAverage::Apply(int64_t step) {
  torch::NoGradGuard no_grad;
  // shadow = decay * shadow + (1 - decay) * value, one multi-tensor kernel
  // per line on accelerators.
  const double decay = Decay(step, options_.max_decay);
  if (shadows_.empty()) return;
  at::_foreach_mul_(shadows_, decay);
  at::_foreach_add_(shadows_, averaged_values_, 1.0 - decay);
}

void ExponentialMovingAverage::CopyTo(torch::nn::Module& target) const {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> tensors = NamedTensors(target);
  if (tensors.size() != entries_.size()) {
    AverageMismatch("the target has " + std::to_string(tensors.size()) + " tensors, the average " +
                    std::to_string(entries_.size()));
  }
  for (const Entry& entry : entries_) {
    const auto it = tensors.find(entry.name);
    if (it == tensors.end()) AverageMismatch("the target has no " + entry.name);
    if (it->second.sizes() != entry.value.sizes()) {
      AverageMismatch(entry.name + " is " + c10::str(it->second.sizes()) + " in the target, " +
                      c10::str(entry.value.sizes()) + " here");
    }
  }
  for (const Entry& entry : entries_) {
    tensors[entry.name].copy_(entry.shadow.defined() ? entry.shadow : entry.value);
  }
}

void ExponentialMovingAverage::Swap() {
  torch::NoGradGuard no_grad;
  for (Entry& entry : entries_) {
    if (!entry.shadow.defined()) continue;
    torch::Tensor current = entry.value.clone();
    entry.value.copy_(entry.shadow);
    entry.shadow.copy_(current);
  }
}

torch::Tensor ExponentialMovingAverage::Average(const std::string& name) const {
  for (const Entry& entry : entries_) {
    if (entry.name == name) return entry.shadow;
  }
  return {};
}

void ExponentialMovingAverage::save(torch::serialize::OutputArchive& archive) const {
  archive.write("format", c10::IValue(std::string(kAverageFormat)));
  int64_t count = 0;
  for (const Entry& entry : entries_) {
    if (!entry.shadow.defined()) continue;
    const std::string index = std::to_string(count++);
    archive.write("name/" + index, c10::IValue(entry.name));
    archive.write("shadow/" + index, entry.shadow, /*is_buffer=*/true);
  }
  archive.write("count", c10::IValue(count));
}

void ExponentialMovingAverage::load(torch::serialize::InputArchive& archive) {
  c10::IValue format;
  if (!archive.try_read("format", format) || !format.isString() ||
      format.toStringRef() != kAverageFormat) {
    AverageMismatch("the archive holds no weight averages (format " + std::string(kAverageFormat) +
                    ")");
  }
  c10::IValue count_value;
  archive.read("count", count_value);
  const int64_t count = count_value.toInt();
  std::map<std::string, torch::Tensor> saved;
  for (int64_t i = 0; i < count; ++i) {
    c10::IValue name;
    torch::Tensor shadow;
    archive.read("name/" + std::to_string(i), name);
    archive.read("shadow/" + std::to_string(i), shadow, /*is_buffer=*/true);
    saved[name.toStringRef()] = shadow;
  }
  int64_t expected = 0;
  for (const Entry& entry : entries_) {
    if (!entry.shadow.defined()) continue;
    ++expected;
    const auto it = saved.find(entry.name);
    if (it == saved.end()) AverageMismatch("no average saved for " + entry.name);
    if (it->second.sizes() != entry.shadow.sizes()) {
      AverageMismatch(entry.name + " is " + c10::str(entry.shadow.sizes()) + " here, " +
                      c10::str(it->second.sizes()) + " saved");
    }
  }
  if (expected != count) {
    AverageMismatch(std::to_string(count) + " averages saved, " + std::to_string(expected) +
                    " tracked here (were buffers averaged when it was saved?)");
  }
  torch::NoGradGuard no_grad;
  for (Entry& entry : entries_) {
    if (entry.shadow.defined()) entry.shadow.copy_(saved[entry.name]);
  }
}

}  // namespace retrain::trainer
