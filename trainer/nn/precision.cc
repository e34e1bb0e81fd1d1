#include "trainer/nn/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "trainer/spec/training_knobs.h"
#include "trainer/trainer_error.h"

// LibTorch 2.4 replaced the per-device autocast switches with calls that
// take the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define RETRAIN_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace retrain::trainer {

namespace {

void SetAutocast(torch::DeviceType type, bool enabled) {
#ifdef RETRAIN_AUTOCAST_BY_DEVICE_TYPE
  if (enabled) at::autocast::set_autocast_dtype(type, at::kBFloat16);
  at::autocast::set_autocast_enabled(type, enabled);
#else
  if (type == torch::kCUDA) {
    if (enabled) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(enabled);
  } else {
    if (enabled) at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

}  // namespace

Precision ParsePrecision(const std::string& name) {
  if (name == "fp32") return Precision::kFloat32;
  if (name == "bf16") return Precision::kBFloat16;
  throw TrainerError(TrainerError::Kind::kConfig,
                     "--precision must be " + spec::OneOf(spec::kPrecisions) + ", not '" + name +
                         "'");
}

torch::MemoryFormat ParseMemoryFormat(const std::string& name, const torch::Device& device) {
  if (name == "channels_last") return torch::MemoryFormat::ChannelsLast;
  if (name == "contiguous") return torch::MemoryFormat::Contiguous;
  if (name == "auto") {
    return device.is_cuda() ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  }
  throw TrainerError(TrainerError::Kind::kConfig,
                     "--memory_format must be auto, channels_last or contiguous, not '" + name +
                         "'");
}

AutocastScope::AutocastScope(const torch::Device& device, Precision precision)
    : enabled_(precision == Precision::kBFloat16), device_type_(device.type()) {
  if (enabled_) SetAutocast(device_type_, true);
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
  SetAutocast(device_type_, false);
  // Casts cached during this forward pass belong to this step's weights.
  at::autocast::clear_cache();
}

void ApplyMemoryFormat(torch::nn::Module& module, torch::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(format));
  }
  for (auto& b : module.buffers()) {
    if (b.dim() == 4) b.set_data(b.contiguous(format));
  }
}

}  // namespace retrain::trainer
