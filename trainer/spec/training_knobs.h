// The training knobs whose defaults and valid values the trainer, the
// coordinator (admission, the memory plan) and the CLI share: one home for
// each. TrainingSpec (proto/retrain/v1/training.proto) names the knobs; the
// worker passes every field of it on as the trainer's flag of the same name
// (worker/trainer_task.h). Header-only, with no dependencies: every part of
// retrain may include it.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace retrain::trainer::spec {

// Examples per step over all ranks (TF's --batch_size).
inline constexpr int kDefaultBatchSize = 32;
// The input pipeline: the shuffle buffer holds input_queue_memory_factor
// batches' worth of records; decoding threads and shard readers per rank.
inline constexpr int kDefaultInputQueueMemoryFactor = 16;
inline constexpr int kDefaultNumPreprocessThreads = 4;
inline constexpr int kDefaultNumReaders = 4;

// --precision: fp32, or bf16 (the forward pass under autocast).
inline constexpr std::array<std::string_view, 2> kPrecisions = {"fp32", "bf16"};
// --augmentation: the reference's distortions, or a resize only.
inline constexpr std::array<std::string_view, 2> kAugmentations = {"inception", "none"};
// --decode: where JPEGs are decoded.
inline constexpr std::array<std::string_view, 3> kDecodes = {"auto", "cpu", "gpu"};

template <size_t N>
bool IsOneOf(std::string_view value, const std::array<std::string_view, N>& values) {
  for (std::string_view v : values) {
    if (v == value) return true;
  }
  return false;
}

// "auto, cpu or gpu": the values for a message.
template <size_t N>
std::string OneOf(const std::array<std::string_view, N>& values) {
  std::string out;
  for (size_t i = 0; i < N; ++i) {
    if (i > 0) out += i + 1 == N ? " or " : ", ";
    out += values[i];
  }
  return out;
}

}  // namespace retrain::trainer::spec
