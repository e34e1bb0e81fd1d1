// Device memory of a training step, measured rather than guessed.
//
// MeasureStepMemory() runs one forward and backward pass of a fresh copy of
// a model at two batch sizes and records, through LibTorch's allocator
// reporting hook (c10::MemoryReportingInfoBase: the CPU allocator and CUDA's
// caching allocator both report every allocation and free to it), the peak
// of the bytes allocated during each pass. The difference between the two
// peaks, divided by the difference of the batch sizes, is what each example
// of a batch costs: the activations autograd keeps for backward, their
// gradients and the input. The rest of a pass (the weights' gradients,
// scratch that does not grow with the batch) is the fixed part.
//
// The trainer prints these figures with the model's own state at start and
// uses them for --batch_size auto; the coordinator's model catalog
// (model_catalog.h) carries them for admission (a test holds the two
// together).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

#include "trainer/spec/model_catalog.h"
#include "trainer/nn/precision.h"

namespace retrain::trainer {

struct StepMemory {
  // The model's own tensors on the device, batch size aside.
  int64_t weights_bytes = 0;
  int64_t buffers_bytes = 0;
  // Peak bytes a forward + backward pass adds per example of the batch,
  // and the part of that peak that does not grow with the batch (including
  // the weights' gradients).
  int64_t bytes_per_example = 0;
  int64_t fixed_bytes = 0;
  // What was measured: the batch sizes and the two peaks.
  int batch_a = 0, batch_b = 0;
  int64_t peak_a = 0, peak_b = 0;

  // Bytes a training step on `batch` examples needs besides the weights,
  // the optimizer's two slots per weight and the moving averages: fixed +
  // batch x per example.
  int64_t StepBytes(int batch) const { return fixed_bytes + batch * bytes_per_example; }
};

// trainer::ModelStateBytes (model_catalog.h) of the measured model; its
// gradients are in StepMemory::fixed_bytes.
inline int64_t ModelStateBytes(const StepMemory& m, bool with_averages) {
  return ModelStateBytes(m.weights_bytes, m.buffers_bytes, with_averages);
}

// One fresh copy of a model on a device, for measuring training passes: the
// caller's model and its batch-norm statistics are not touched, and the
// CPU's default random stream is left as it was (the CUDA streams are not
// kept: the trainer seeds them again before every step). Not thread-safe.
class StepMemoryProbe {
 public:
  // `model_name` with `num_classes` outputs, square `image_size` inputs, on
  // `device` in `precision` and `memory_format`.
  StepMemoryProbe(const std::string& model_name, int num_classes, int image_size,
                  const torch::Device& device, Precision precision,
                  torch::MemoryFormat memory_format);
  ~StepMemoryProbe();

  // Peak bytes one forward + backward pass on `batch` (>= 2: batch norm
  // needs two values per channel) examples allocates above what was
  // allocated before it. Throws what the pass throws (an out-of-memory
  // c10::Error on a device too small); the probe stays usable.
  int64_t PeakOfPass(int batch);

  int64_t weights_bytes() const { return weights_bytes_; }
  int64_t buffers_bytes() const { return buffers_bytes_; }

 private:
  class Counter;
  std::shared_ptr<torch::nn::Module> model_;  // a Model
  std::shared_ptr<Counter> counter_;
  const int image_size_;
  const torch::Device device_;
  const Precision precision_;
  const torch::MemoryFormat memory_format_;
  int64_t weights_bytes_ = 0;
  int64_t buffers_bytes_ = 0;
};

// Measures with a StepMemoryProbe at batches batch_a < batch_b (both >= 2),
// after a first pass at batch_a that warms up what is allocated once
// (cuDNN's handles and workspaces, oneDNN's caches).
StepMemory MeasureStepMemory(const std::string& model_name, int num_classes, int image_size,
                             const torch::Device& device, Precision precision,
                             torch::MemoryFormat memory_format, int batch_a = 2, int batch_b = 4);

// --batch_size auto: the largest batch, a multiple of `multiple`, for which
// `fits(batch)` holds (a real training step that does not run out of
// memory), found by doubling from `multiple` and then bisecting, at most
// `max_batch`. Assumes that a batch fits whenever a larger one does.
// Returns 0 when not even `multiple` fits.
int LargestFittingBatch(const std::function<bool(int)>& fits, int multiple, int max_batch);

}  // namespace retrain::trainer
