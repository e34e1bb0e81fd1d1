// Checkpoints in --train_dir: model.ckpt-<step> files (LibTorch archives)
// holding the weights, their moving averages, the optimizer state, the step
// and the input position, so that a restarted run continues where it
// stopped. A "checkpoint" text file names the latest, as TensorFlow's does.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trainer/input/dataset_manifest.h"
#include "trainer/nn/model.h"
#include "trainer/nn/moving_average.h"
#include "trainer/nn/rmsprop_tf.h"

namespace retrain::trainer {

// What a checkpoint says about the run besides tensors.
struct CheckpointMeta {
  std::string model;
  int64_t num_classes = 0;
  int64_t image_size = 0;
  int64_t step = 0;
  // Where the input pipeline stands (InputPipeline::Position as JSON).
  std::string input_position;
  int64_t seed = 0;
  // The dataset's class names: written to the summary beside the checkpoint
  // (spec/checkpoint_summary.h), not to the archive, and not read back by
  // ReadCheckpointMeta().
  std::vector<LabelInfo> labels;
};

class CheckpointManager {
 public:
  // `keep`: how many checkpoints to keep (older ones are deleted).
  CheckpointManager(std::string dir, int keep);

  // Writes model.ckpt-<meta.step> to a temporary name, renames it into
  // place and updates the "checkpoint" file. Throws TrainerError.
  std::string Save(const CheckpointMeta& meta, Model& model, const ExponentialMovingAverage& ema,
                   const RmsPropTf& optimizer);

  // The newest checkpoint in the directory, if any.
  std::optional<std::string> Latest() const;

  // Every checkpoint in the directory, oldest first.
  std::vector<std::string> List() const;

  // Removes what a killed writer left: hidden ".model.ckpt-*.tmp-*",
  // ".model.ckpt-*.json.tmp" and ".checkpoint.tmp" files. Only for the one
  // process that writes checkpoints here, before it writes any.
  void RemoveAbandonedTemporaries() const;

 private:
  std::string dir_;
  int keep_;
};

// Reads a checkpoint's meta data. Throws TrainerError(kData) for a damaged
// or foreign file.
CheckpointMeta ReadCheckpointMeta(const std::string& path);

// A checkpoint's own model (the model and class count its meta data names)
// and that meta data, read in one pass, for commands that run a trained
// model as it is (classify, export, evaluate). `use_moving_averages`: the
// model holds the moving averages instead of the raw weights. Throws
// TrainerError(kData) for a damaged or foreign file.
struct CheckpointModel {
  CheckpointMeta meta;
  ModelPtr model;
};
CheckpointModel LoadCheckpointModel(const std::string& path, bool use_moving_averages);

// Restores a full training state written by Save(). Throws TrainerError:
// kConfig when the checkpoint's model or class count differs from `model`.
void RestoreCheckpoint(const std::string& path, Model& model, ExponentialMovingAverage* ema,
                       RmsPropTf* optimizer);

// The checkpoint a command was pointed at: the file `checkpoint`, or the
// newest one in `checkpoint_dir` (exactly one of the two is set). Throws
// TrainerError(kConfig) naming the flag (--checkpoint, --checkpoint_dir).
std::string ChooseCheckpoint(const std::string& checkpoint_dir, const std::string& checkpoint);

// Loads only weights from a checkpoint, for fine-tuning or evaluation; a
// path ending in .safetensors is a weights file (safetensors_weights.h).
// `skip_classifier`: leave the model's classifier layers as they are (they
// start fresh when the class count changes). `use_moving_averages`: take
// the moving averages instead of the raw weights (evaluation). Without
// skip_classifier, a class-count mismatch is TrainerError(kConfig) that
// suggests --fine_tune.
void LoadWeights(const std::string& path, Model& model, bool skip_classifier,
                 bool use_moving_averages);

}  // namespace retrain::trainer
