// A model's weights as a safetensors file (input/safetensors_index.h): the
// tensors named as the model's parameters and buffers, which for
// inception_v3 and resnet50 are torchvision's own names. This is how weights
// trained elsewhere (torchvision's ImageNet models, written out by
// scripts/weights_to_safetensors.py) start a fine-tuning run, and how a
// retrain checkpoint's weights go back to PyTorch.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "trainer/input/safetensors_index.h"
#include "trainer/nn/model.h"

namespace retrain::trainer {

// Copies the file's tensors into `model`'s parameters and buffers of the
// same names, converting the dtype, as PyTorch's strict load_state_dict:
// every parameter and buffer must be there (batch norm's
// num_batches_tracked may be missing) with the model's shape, and every
// tensor of the file must be used. `skip_classifier` leaves the classifier
// layers as they are (fine-tuning to another class count); their tensors
// may then have any shape or be missing. Throws TrainerError: kConfig naming
// the tensor for a file of another model or class count (suggesting
// --fine_tune), kData for a damaged file.
void LoadSafetensorsWeights(const std::string& path, Model& model, bool skip_classifier);

// Every tensor of a safetensors file, on the CPU in its own dtype. Throws
// TrainerError: kData for a damaged file, kConfig for a dtype LibTorch has
// no tensors of.
std::map<std::string, torch::Tensor> ReadSafetensors(const std::string& path);

// Writes `tensors` (contiguous or not, any device) as a safetensors file:
// to a temporary name, then renamed into place. Float tensors are written
// as F32 unless they are F16/BF16/F64, integers as their own width.
// Throws TrainerError(kConfig) when the file cannot be written.
void WriteSafetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata);

// The model's parameters and buffers in named_parameters() then
// named_buffers() order, as WriteSafetensors() takes them.
std::vector<std::pair<std::string, torch::Tensor>> NamedTensors(const Model& model);

}  // namespace retrain::trainer
