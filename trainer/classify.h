// `retrain-trainer classify`: a trained checkpoint applied to image files.
// Each JPEG goes through the evaluation preprocessing (central crop, resize
// to the checkpoint's image size) into the model with its moving averages,
// as `eval` scores it, and gets its most probable classes with their names.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace retrain::trainer {

struct ClassifyOptions {
  // The newest checkpoint in checkpoint_dir, or the checkpoint file named by
  // checkpoint (one of the two).
  std::string checkpoint_dir;
  std::string checkpoint;
  // Class names come from the checkpoint's summary; a dataset directory
  // (dataset.json) names them for checkpoints that do not record them.
  std::string data_dir;
  // JPEG files, and directories searched for files (recursively, hidden
  // names left out), each directory's files in name order.
  std::vector<std::string> inputs;
  int top_k = 5;
  int batch_size = 32;
  std::string output = "text";  // "text" or "json"
  // "auto" (the first CUDA device when there is one), "cpu" or "cuda".
  std::string device = "auto";
};

struct ClassifyResult {
  int64_t classified = 0;
  int64_t skipped = 0;  // not a JPEG, unreadable or undecodable: reported, not classified
};

// Writes one result per input image to `out`, in input order:
//   text: PATH: NAME 97.1%, NAME 2.0%, ...      (skipped ones go to stderr)
//   json: {"image":PATH,"predictions":[{"label":3,"name":"cat",
//          "probability":0.971},...]}   or   {"image":PATH,"error":"..."}
// Throws TrainerError(kConfig) for a missing input, no checkpoint or bad
// options, before anything is classified.
ClassifyResult Classify(const ClassifyOptions& options, std::ostream& out);

}  // namespace retrain::trainer
