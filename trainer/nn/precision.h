// Mixed precision and memory format of a training step.
//
// --precision bf16 runs the forward pass under LibTorch's autocast to
// bfloat16 (matrix multiplies and convolutions in bf16, reductions and the
// loss in fp32), on CUDA or the CPU; the weights, gradients and optimizer
// state stay fp32, so no loss scaling is needed (bf16 has fp32's exponent
// range). --memory_format channels_last stores 4-D weights and the input
// batch as NHWC, which cuDNN's and oneDNN's convolutions prefer.
#pragma once

#include <torch/torch.h>

#include <string>

namespace retrain::trainer {

enum class Precision { kFloat32, kBFloat16 };

// "fp32" or "bf16"; anything else is TrainerError(kConfig) naming --precision.
Precision ParsePrecision(const std::string& name);

// "channels_last" or "contiguous" ("auto": channels_last on CUDA, else
// contiguous); anything else is TrainerError(kConfig) naming --memory_format.
torch::MemoryFormat ParseMemoryFormat(const std::string& name, const torch::Device& device);

// Autocast to bf16 for `device`'s type while alive (nothing for kFloat32).
// Scopes do not nest; one per forward pass, on the training thread.
class AutocastScope {
 public:
  AutocastScope(const torch::Device& device, Precision precision);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_ = false;
  torch::DeviceType device_type_ = torch::kCPU;
};

// Re-lays out every 4-D parameter and buffer of `module` in `format`.
// Call before an optimizer or moving average sees the parameters.
void ApplyMemoryFormat(torch::nn::Module& module, torch::MemoryFormat format);

}  // namespace retrain::trainer
