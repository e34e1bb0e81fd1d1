// The models retrain-trainer knows, their input sizes and what they take of
// a device's memory, without LibTorch: the coordinator checks training
// requests against it. nn/model.cc's registry builds exactly these models,
// and the memory figures are what nn/step_memory.h measures of them (tests
// hold both together: model_test.cc, step_memory_test.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace retrain::trainer {

struct ModelInfo {
  std::string name;
  int default_image_size;  // pixels, square
  // fp32 weights: weights_base_bytes + num_classes x weights_per_class_bytes
  // (the classifier layers grow with the classes); buffers (batch-norm
  // statistics) do not depend on the classes.
  int64_t weights_base_bytes;
  int64_t weights_per_class_bytes;
  int64_t buffers_bytes;
  // Peak bytes a training step adds per example at default_image_size, in
  // fp32 and in bf16 autocast (StepMemory::bytes_per_example, measured on
  // the CPU with 1001 classes).
  int64_t step_bytes_per_example;
  int64_t step_bytes_per_example_bf16;

  int64_t WeightsBytes(int num_classes) const {
    return weights_base_bytes + num_classes * weights_per_class_bytes;
  }
};

inline const std::vector<ModelInfo>& ModelCatalog() {
  // Measured with Debian's LibTorch 1.13 on the CPU (step_memory_test.cc
  // checks them). For comparison, PyTorch's own inception_v3 on an H200
  // peaked at 14.4 GiB at batch 128 in fp32 (113 MiB per example, all of
  // the process) and 13.3 GiB at batch 256 in bf16 (53 MiB).
  static const std::vector<ModelInfo> catalog{
      {"inception_v3", 299, 97373056, (2048 + 768 + 2) * 4, 145664, 98828576, 53325668},
      {"linear", 32, 0, (3 * 32 * 32 + 1) * 4, 0, 20304, 26448},
      {"resnet50", 224, 94032128, (2048 + 1) * 4, 212904, 85503916, 44363692},
      {"small", 32, 263040, (256 + 1) * 4, 1568, 509868, 273232}};
  return catalog;
}

inline const ModelInfo* FindModelInfo(const std::string& name) {
  for (const auto& m : ModelCatalog()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

// What a training process holds of a model whatever the batch: weights,
// buffers, RMSProp's two slots per weight and, where it keeps them
// (`with_averages`: rank 0), the moving averages of weights and buffers.
// Gradients come with a training step.
inline int64_t ModelStateBytes(int64_t weights_bytes, int64_t buffers_bytes, bool with_averages) {
  const int64_t averages = with_averages ? weights_bytes + buffers_bytes : 0;
  return weights_bytes + buffers_bytes + 2 * weights_bytes + averages;
}

// Device memory a training rank needs besides what the catalog's figures
// give: the CUDA context, cuDNN's and cuBLAS's workspaces and the caching
// allocator's rounding. An allowance, not a measurement.
inline constexpr int64_t kDeviceReserveBytes = int64_t{1} << 30;

}  // namespace retrain::trainer
