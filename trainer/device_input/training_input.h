// The training loop's input: an InputPipeline's batches as tensors on the
// training device, decoded by the pipeline's CPU threads or, with --decode
// gpu (or auto, once those threads fall behind), by nvJPEG on the GPU with
// the same records, draws and positions.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>

#include "trainer/device_input/jpeg_batch_decoder.h"
#include "trainer/input/input_pipeline.h"

namespace retrain::trainer {

enum class DecodePlace { kCpu, kGpu, kAuto };

// "cpu", "gpu" or "auto"; anything else is TrainerError(kConfig) naming
// --decode.
DecodePlace ParseDecodePlace(const std::string& name);

// Throws TrainerError(kConfig) when `place` cannot be had on `device`
// (kGpu on a CPU device). Cheap: for checking options before work starts.
void CheckDecodePlace(DecodePlace place, const torch::Device& device);

// --decode auto's rule: the CPU threads fall behind when the training loop
// spent more than a tenth of its time waiting for their batches.
bool CpuInputFallsBehind(double wait_seconds, double elapsed_seconds);

class TrainingInput {
 public:
  // --decode auto measures the share of steps kAutoFirstStep to
  // kAutoFirstStep + kAutoSteps (counted from this process's start) spent
  // waiting for batches, then decides once.
  static constexpr int kAutoFirstStep = 10;
  static constexpr int kAutoSteps = 20;

  struct Options {
    InputPipeline::Options pipeline;  // device_decode is set here, not by the caller
    torch::Device device = torch::kCPU;
    torch::MemoryFormat memory_format = torch::MemoryFormat::Contiguous;
    DecodePlace decode = DecodePlace::kAuto;
    bool log = false;  // this rank logs the decisions (rank 0)
  };

  // Starts on the CPU threads, or on the GPU for kGpu: that needs a CUDA
  // device and nvJPEG, else TrainerError(kConfig) says which is missing.
  TrainingInput(const Options& options, const DatasetManifest& manifest);

  // The next batch: images [n, 3, s, s] float in [-1, 1] on the device in the
  // memory format, labels [n] int64. Throws what InputPipeline::Next()
  // throws, and TrainerError(kData) naming the record for an image the GPU
  // path cannot decode (skipped, and the batch shorter, with
  // skip_corrupt_records). On a CPU device the images and labels may
  // share the input's buffers: they are valid until the next call.
  void Next(torch::Tensor* images, torch::Tensor* labels);

  void Seek(const InputPipeline::Position& position) { pipeline_->Seek(position); }
  InputPipeline::Position position() const { return pipeline_->position(); }
  bool on_gpu() const { return gpu_ != nullptr; }

 private:
  // Moves decoding to the GPU from the current position.
  void SwitchToGpu(std::unique_ptr<JpegBatchDecoder> decoder);
  void MeasureForAuto(double waited_seconds);
  torch::Tensor DecodeOnGpu(const Batch& batch, std::vector<int64_t>* labels);

  Options options_;
  std::unique_ptr<InputPipeline> pipeline_;
  std::unique_ptr<JpegBatchDecoder> gpu_;  // set while decoding on the GPU
  Batch batch_;
  // --decode auto's measurement.
  bool deciding_ = false;
  int calls_ = 0;
  double waited_ = 0;
  std::chrono::steady_clock::time_point measure_start_;
};

}  // namespace retrain::trainer
