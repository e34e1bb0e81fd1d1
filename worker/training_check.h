// A training's or an evaluation's first task: the checks of its request that
// need the file system, which the coordinator does not read.
#pragma once

#include "retrain/v1/worker.pb.h"

namespace retrain::worker {

// Runs a CheckTrainingTask. For a training: data_dir, train_dir and the
// pretrained weights' path confined to the data roots with symlinks
// followed (PERMISSION_DENIED), the dataset's manifest read with every shard
// and index present (FAILED_PRECONDITION), the newest checkpoint in
// train_dir and the pretrained weights described (FAILED_PRECONDITION when
// the weights cannot be read), and train_dir created (PERMISSION_DENIED when
// it cannot be). For an evaluation: data_dir and checkpoint_dir confined and
// a checkpoint there (FAILED_PRECONDITION). Each refusal is the result's
// `refusal`, naming the field; the coordinator judges the rest (the
// model's and classes' agreement, the memory plan).
retrain::v1::CheckTrainingResult RunCheckTrainingTask(const retrain::v1::CheckTrainingTask& task);

}  // namespace retrain::worker
