// model.ckpt-<step>.json beside each checkpoint: what the checkpoint holds,
// readable without LibTorch, so that the coordinator can check a training
// request against the checkpoints it would resume or start from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataset/manifest.h"

namespace retrain::trainer {

struct CheckpointSummary {
  std::string model;
  int64_t num_classes = 0;
  int64_t image_size = 0;
  int64_t step = 0;
  // The names of the classes the model was trained on (dataset.json's
  // labels); empty in summaries written before they were recorded.
  std::vector<dataset::LabelInfo> labels;
};

// The summary file of the checkpoint at `checkpoint_path`.
std::string CheckpointSummaryPath(const std::string& checkpoint_path);

// Writes it (temporary name, then rename). False when it cannot.
bool WriteCheckpointSummary(const std::string& checkpoint_path, const CheckpointSummary& summary);

// The checkpoint's summary; nullopt when it has none or it is unreadable.
std::optional<CheckpointSummary> ReadCheckpointSummary(const std::string& checkpoint_path);

// The summary of the newest checkpoint (highest step) in `dir`, if any.
std::optional<CheckpointSummary> NewestCheckpointSummary(const std::string& dir);

}  // namespace retrain::trainer
