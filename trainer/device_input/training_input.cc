#include "trainer/device_input/training_input.h"

#include "trainer/device_input/device_preprocess.h"
#include "trainer/trainer_error.h"
#include "trainer/trainer_log.h"

namespace retrain::trainer {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void ConfigError(const std::string& message) {
  throw TrainerError(TrainerError::Kind::kConfig, message);
}

}  // namespace

DecodePlace ParseDecodePlace(const std::string& name) {
  if (name == "cpu") return DecodePlace::kCpu;
  if (name == "gpu") return DecodePlace::kGpu;
  if (name == "auto") return DecodePlace::kAuto;
  ConfigError("--decode must be cpu, gpu or auto (got \"" + name + "\")");
}

void CheckDecodePlace(DecodePlace place, const torch::Device& device) {
  if (place == DecodePlace::kGpu && !device.is_cuda()) {
    ConfigError(
        "--decode gpu decodes on the training GPU: train with --num_gpus, or use "
        "--decode cpu");
  }
}

bool CpuInputFallsBehind(double wait_seconds, double elapsed_seconds) {
  return elapsed_seconds > 0 && wait_seconds > 0.1 * elapsed_seconds;
}

TrainingInput::TrainingInput(const Options& options, const DatasetManifest& manifest)
    : options_(options) {
  options_.pipeline.device_decode = false;
  std::unique_ptr<JpegBatchDecoder> gpu;
  if (options_.decode == DecodePlace::kGpu) {
    CheckDecodePlace(options_.decode, options_.device);
    std::string why;
    gpu = MakeNvjpegDecoder(options_.device, &why);
    if (!gpu) ConfigError("--decode gpu: " + why + "; use --decode cpu");
    options_.pipeline.device_decode = true;
  }
  pipeline_ = std::make_unique<InputPipeline>(options_.pipeline, manifest);
  gpu_ = std::move(gpu);
  deciding_ = options_.decode == DecodePlace::kAuto && options_.device.is_cuda();
  if (options_.log && gpu_)
    LogInfo("input: JPEGs decoded on " + options_.device.str() + " by " + gpu_->name());
}

void TrainingInput::SwitchToGpu(std::unique_ptr<JpegBatchDecoder> decoder) {
  InputPipeline::Options p = options_.pipeline;
  p.device_decode = true;
  auto next = std::make_unique<InputPipeline>(p, pipeline_->manifest());
  next->Seek(pipeline_->position());
  pipeline_ = std::move(next);  // the old one's prefetched batches are read again
  gpu_ = std::move(decoder);
}

void TrainingInput::MeasureForAuto(double waited_seconds) {
  ++calls_;
  if (calls_ <= kAutoFirstStep) {
    measure_start_ = Clock::now();
    return;
  }
  waited_ += waited_seconds;
  if (calls_ < kAutoFirstStep + kAutoSteps) return;
  deciding_ = false;
  const double elapsed = std::chrono::duration<double>(Clock::now() - measure_start_).count();
  const double share = elapsed > 0 ? 100.0 * waited_ / elapsed : 0.0;
  if (!CpuInputFallsBehind(waited_, elapsed)) {
    if (options_.log) {
      LogInfo(
          Printf("input: the CPU threads keep up (steps waited %.1f%% of the time for "
                 "batches); decoding stays on the CPU",
                 share));
    }
    return;
  }
  std::string why;
  auto decoder = MakeNvjpegDecoder(options_.device, &why);
  if (!decoder) {
    if (options_.log) {
      LogWarning(
          Printf("input: steps wait %.1f%% of the time for batches from the CPU threads "
                 "and the GPU cannot decode (%s): raise --num_preprocess_threads",
                 share, why.c_str()));
    }
    return;
  }
  if (options_.log) {
    LogInfo(
        Printf("input: steps waited %.1f%% of the time for batches from the CPU threads; "
               "JPEGs are decoded on %s by %s from now on",
               share, options_.device.str().c_str(), decoder->name().c_str()));
  }
  SwitchToGpu(std::move(decoder));
}

torch::Tensor TrainingInput::DecodeOnGpu(const Batch& batch, std::vector<int64_t>* labels) {
  std::vector<torch::Tensor> images;
  std::vector<std::string> errors;
  gpu_->Decode(batch.encoded, &images, &errors);
  std::vector<torch::Tensor> kept;
  std::vector<PreprocessPlan> plans;
  for (size_t i = 0; i < images.size(); ++i) {
    if (!images[i].defined()) {
      if (!options_.pipeline.skip_corrupt_records) {
        throw TrainerError(TrainerError::Kind::kData,
                           errors[i] +
                               "; rebuild the dataset with retrain build-dataset, or "
                               "train with --skip_corrupt_records");
      }
      LogWarning("skipping a bad train record: " + errors[i]);
      continue;
    }
    kept.push_back(std::move(images[i]));
    plans.push_back(batch.encoded[i].plan);
    labels->push_back(batch.labels[i]);
  }
  if (kept.empty()) {
    throw TrainerError(
        TrainerError::Kind::kData,
        "no image of the batch at record " + std::to_string(batch.first_sequence) + " decodes");
  }
  return PreprocessDecoded(kept, plans, options_.pipeline.image_size);
}

void TrainingInput::Next(torch::Tensor* images, torch::Tensor* labels) {
  const auto start = Clock::now();
  if (!pipeline_->Next(&batch_)) {
    throw TrainerError(TrainerError::Kind::kInternal, "the training input ended");
  }
  const double waited = std::chrono::duration<double>(Clock::now() - start).count();
  if (gpu_) {
    std::vector<int64_t> kept_labels;
    *images = DecodeOnGpu(batch_, &kept_labels).contiguous(options_.memory_format);
    *labels = torch::tensor(kept_labels, torch::kInt64).to(options_.device);
  } else {
    *images = torch::from_blob(batch_.images.data(), {batch_.size, 3, batch_.height, batch_.width},
                               torch::kFloat32)
                  .to(options_.device)
                  .contiguous(options_.memory_format);
    *labels =
        torch::from_blob(batch_.labels.data(), {batch_.size}, torch::kInt64).to(options_.device);
  }
  if (deciding_) MeasureForAuto(waited);
}

}  // namespace retrain::trainer
