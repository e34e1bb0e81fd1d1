// `retrain-trainer export`: a checkpoint's weights as a safetensors file
// (safetensors_weights.h), for PyTorch (torchvision's models take them with
// load_state_dict for inception_v3 and resnet50) or as another run's
// --pretrained_model_checkpoint_path.
#pragma once

#include <string>

namespace retrain::trainer {

struct ExportOptions {
  // The newest checkpoint in checkpoint_dir, or the file checkpoint (one
  // of the two).
  std::string checkpoint_dir;
  std::string checkpoint;
  std::string out;  // must end in .safetensors
  // The trained weights as they are, instead of their moving averages (the
  // weights eval and classify use).
  bool raw_weights = false;
};

// Writes the file (whole or not at all) and returns the checkpoint it came
// from. Its metadata records retrain.model, retrain.num_classes,
// retrain.image_size, retrain.step, retrain.weights ("moving averages" or
// "raw") and, when the checkpoint's summary names them, retrain.labels: a
// JSON object from class id (as a string) to name. Throws TrainerError: kConfig for bad options or
// an unwritable path.
std::string ExportWeights(const ExportOptions& o);

}  // namespace retrain::trainer
