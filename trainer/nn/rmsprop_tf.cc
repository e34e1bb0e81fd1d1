#include "trainer/nn/rmsprop_tf.h"

#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

// The key of a parameter in Optimizer::state(): LibTorch 1.13 uses the
// TensorImpl address printed as a string, 2.x the address itself.
using StateMap = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>;
using StateKey = StateMap::key_type;

template <typename Key>
Key KeyOfImpl(const torch::Tensor& param) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;  // what c10::guts::to_string(impl) prints
    key << param.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(param.unsafeGetTensorImpl());
  }
}

StateKey KeyOf(const torch::Tensor& param) { return KeyOfImpl<StateKey>(param); }

constexpr char kOptimizerFormat[] = "retrain.RmsPropTf.v1";

void WriteDouble(torch::serialize::OutputArchive& archive, const char* key, double value) {
  archive.write(key, c10::IValue(value));
}

double ReadDouble(torch::serialize::InputArchive& archive, const char* key) {
  c10::IValue value;
  archive.read(key, value);
  return value.toDouble();
}

int64_t ReadInt(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue value;
  archive.read(key, value);
  return value.toInt();
}

[[noreturn]] void OptimizerMismatch(const std::string& what) {
  throw TrainerError(TrainerError::Kind::kConfig,
                     "optimizer state does not fit this model: " + what +
                         " (the checkpoint was written for another model or class count; "
                         "fine-tuning starts the optimizer fresh)");
}

}  // namespace

RmsPropTfOptions::RmsPropTfOptions(double lr) : lr_(lr) {}

void RmsPropTfOptions::serialize(torch::serialize::OutputArchive& archive) const {
  WriteDouble(archive, "lr", lr());
  WriteDouble(archive, "decay", decay());
  WriteDouble(archive, "momentum", momentum());
  WriteDouble(archive, "epsilon", epsilon());
}

void RmsPropTfOptions::serialize(torch::serialize::InputArchive& archive) {
  lr(ReadDouble(archive, "lr"));
  decay(ReadDouble(archive, "decay"));
  momentum(ReadDouble(archive, "momentum"));
  epsilon(ReadDouble(archive, "epsilon"));
}

void RmsPropTfParamState::serialize(torch::serialize::OutputArchive& archive) const {
  archive.write("step", c10::IValue(step()));
  archive.write("mean_square", mean_square(), /*is_buffer=*/true);
  archive.write("momentum_buffer", momentum_buffer(), /*is_buffer=*/true);
}

void RmsPropTfParamState::serialize(torch::serialize::InputArchive& archive) {
  step(ReadInt(archive, "step"));
  torch::Tensor ms, mom;
  archive.read("mean_square", ms, /*is_buffer=*/true);
  archive.read("momentum_buffer", mom, /*is_buffer=*/true);
  mean_square(std::move(ms));
  momentum_buffer(std::move(mom));
}

RmsPropTf::RmsPropTf(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                     RmsPropTfOptions defaults)
    : torch::optim::Optimizer(std::move(param_groups),
                              std::make_unique<RmsPropTfOptions>(defaults)) {}

RmsPropTf::RmsPropTf(std::vector<torch::Tensor> params, RmsPropTfOptions defaults)
    : RmsPropTf({torch::optim::OptimizerParamGroup(std::move(params))}, std::move(defaults)) {}

torch::Tensor RmsPropTf::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const RmsPropTfOptions&>(group.options());
    std::vector<torch::Tensor> params, grads, mean_squares, momenta;
    for (auto& param : group.params()) {
      if (!param.grad().defined()) continue;
      auto& slot = state_[KeyOf(param)];
      if (slot == nullptr) {
        auto fresh = std::make_unique<RmsPropTfParamState>();
        fresh->mean_square(torch::ones_like(param, torch::MemoryFormat::Preserve));
        fresh->momentum_buffer(torch::zeros_like(param, torch::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& state = static_cast<RmsPropTfParamState&>(*slot);
      state.step(state.step() + 1);
      params.push_back(param);
      grads.push_back(param.grad());
      mean_squares.push_back(state.mean_square());
      momenta.push_back(state.momentum_buffer());
    }
    if (params.empty()) continue;
    // One multi-tensor kernel per line on accelerators (a loop on the CPU):
    //   ms  = decay * ms + (1 - decay) * g^2
    //   mom = momentum * mom + lr * g / sqrt(ms + epsilon)
    //   w  -= mom
    at::_foreach_mul_(mean_squares, options.decay());
    at::_foreach_addcmul_(mean_squares, grads, grads, 1.0 - options.decay());
    std::vector<torch::Tensor> denominators = at::_foreach_add(mean_squares, options.epsilon());
    at::_foreach_sqrt_(denominators);
    at::_foreach_mul_(momenta, options.momentum());
    at::_foreach_addcdiv_(momenta, grads, denominators, options.lr());
    at::_foreach_sub_(params, momenta);
  }
  return loss;
}

void RmsPropTf::SetLearningRate(double lr) {
  for (auto& group : param_groups_) static_cast<RmsPropTfOptions&>(group.options()).lr(lr);
}

void RmsPropTf::ClearGradients() {
  for (auto& group : param_groups_) {
    for (auto& param : group.params()) {
      if (param.grad().defined()) param.mutable_grad() = torch::Tensor();
    }
  }
}

const RmsPropTfParamState* RmsPropTf::StateOf(const torch::Tensor& param) const {
  const auto it = state_.find(KeyOf(param));
  if (it == state_.end()) return nullptr;
  return static_cast<const RmsPropTfParamState*>(it->second.get());
}

void RmsPropTf::save(torch::serialize::OutputArchive& archive) const {
  archive.write("format", c10::IValue(std::string(kOptimizerFormat)));
  archive.write("groups", c10::IValue(static_cast<int64_t>(param_groups_.size())));
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    const auto& group = param_groups_[g];
    torch::serialize::OutputArchive group_archive(archive.compilation_unit());
    torch::serialize::OutputArchive options_archive(archive.compilation_unit());
    static_cast<const RmsPropTfOptions&>(group.options()).serialize(options_archive);
    group_archive.write("options", options_archive);
    const auto& params = group.params();
    group_archive.write("params", c10::IValue(static_cast<int64_t>(params.size())));
    for (size_t i = 0; i < params.size(); ++i) {
      const RmsPropTfParamState* state = StateOf(params[i]);
      if (state == nullptr) continue;
      torch::serialize::OutputArchive state_archive(archive.compilation_unit());
      state->serialize(state_archive);
      group_archive.write("state/" + std::to_string(i), state_archive);
    }
    archive.write("group/" + std::to_string(g), group_archive);
  }
}

void RmsPropTf::load(torch::serialize::InputArchive& archive) {
  c10::IValue format;
  if (!archive.try_read("format", format) || !format.isString() ||
      format.toStringRef() != kOptimizerFormat) {
    OptimizerMismatch("the archive holds no RmsPropTf state (format " +
                      std::string(kOptimizerFormat) + ")");
  }
  const int64_t groups = ReadInt(archive, "groups");
  if (groups != static_cast<int64_t>(param_groups_.size())) {
    OptimizerMismatch(std::to_string(groups) + " parameter groups saved, " +
                      std::to_string(param_groups_.size()) + " here");
  }
  // Read everything before changing anything, so a failed load leaves the
  // optimizer as it was.
  std::vector<RmsPropTfOptions> options(param_groups_.size());
  std::vector<std::vector<std::unique_ptr<RmsPropTfParamState>>> states(param_groups_.size());
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    torch::serialize::InputArchive group_archive;
    archive.read("group/" + std::to_string(g), group_archive);
    torch::serialize::InputArchive options_archive;
    group_archive.read("options", options_archive);
    options[g].serialize(options_archive);
    const auto& params = param_groups_[g].params();
    const int64_t count = ReadInt(group_archive, "params");
    if (count != static_cast<int64_t>(params.size())) {
      OptimizerMismatch("group " + std::to_string(g) + " has " + std::to_string(count) +
                        " parameters saved, " + std::to_string(params.size()) + " here");
    }
    states[g].resize(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      torch::serialize::InputArchive state_archive;
      if (!group_archive.try_read("state/" + std::to_string(i), state_archive)) continue;
      auto state = std::make_unique<RmsPropTfParamState>();
      state->serialize(state_archive);
      const torch::Tensor& param = params[i];
      for (const torch::Tensor* t : {&state->mean_square(), &state->momentum_buffer()}) {
        if (!t->defined() || t->sizes() != param.sizes()) {
          OptimizerMismatch("parameter " + std::to_string(i) + " of group " + std::to_string(g) +
                            " has shape " + c10::str(param.sizes()) + " here but " +
                            (t->defined() ? c10::str(t->sizes()) : std::string("none")) + " saved");
        }
      }
      state->mean_square(state->mean_square().to(param.device(), param.scalar_type()));
      state->momentum_buffer(state->momentum_buffer().to(param.device(), param.scalar_type()));
      states[g][i] = std::move(state);
    }
  }
  state_.clear();
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    auto& group_options = static_cast<RmsPropTfOptions&>(param_groups_[g].options());
    group_options = options[g];
    const auto& params = param_groups_[g].params();
    for (size_t i = 0; i < params.size(); ++i) {
      if (states[g][i] != nullptr) state_[KeyOf(params[i])] = std::move(states[g][i]);
    }
  }
}

}  // namespace retrain::trainer
