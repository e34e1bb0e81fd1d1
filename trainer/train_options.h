// Options of retrain-trainer, one field per flag. Defaults are the
// reference's (inception_train.py, image_processing.py).
#pragma once

#include <cstdint>
#include <string>

#include "trainer/distributed/rank_options.h"
#include "trainer/spec/training_knobs.h"

namespace retrain::trainer {

// TrainOptions::batch_size for --batch_size auto: the largest batch the
// GPUs hold, found by trying at start (CUDA only).
inline constexpr int kAutoBatchSize = -1;

struct TrainOptions {
  // A directory written by `retrain build-dataset` (holds dataset.json).
  std::string data_dir;
  // Checkpoints and event files. Never wiped: existing checkpoints resume.
  std::string train_dir;
  std::string model = "inception_v3";
  // Examples per step over all ranks, or kAutoBatchSize.
  int batch_size = spec::kDefaultBatchSize;
  // Stop after this many steps; 0 means use num_epochs.
  int64_t max_steps = 0;
  double num_epochs = 0;
  // 0: the model's own input size (299 for inception_v3).
  int image_size = 0;
  int input_queue_memory_factor = spec::kDefaultInputQueueMemoryFactor;
  int num_preprocess_threads = spec::kDefaultNumPreprocessThreads;
  int num_readers = spec::kDefaultNumReaders;
  double initial_learning_rate = 0.1;
  double num_epochs_per_decay = 30.0;
  double learning_rate_decay_factor = 0.16;
  double rmsprop_decay = 0.9;
  double momentum = 0.9;
  double rmsprop_epsilon = 1.0;
  bool fine_tune = false;
  // Training input only: skip (and log, with file and offset) a record whose
  // framing or CRC is bad or whose image does not decode, rather than stop
  // with a data error. Evaluation never skips.
  bool skip_corrupt_records = false;
  // Batch-norm statistics over the whole step's batch (every rank's
  // examples) rather than per rank; no effect on one rank.
  bool sync_batch_norm = false;
  std::string pretrained_model_checkpoint_path;
  uint64_t seed = 1;
  // spec::kAugmentations: "inception", the reference's distortions; "none",
  // resize only (for data such as digits, where crops and flips change the
  // label).
  std::string augmentation = std::string(spec::kAugmentations[0]);
  // Log every N steps; checkpoint every N steps and at the end; keep K.
  int log_every_steps = 10;
  int64_t checkpoint_every_steps = 5000;
  int checkpoint_every_secs = 0;
  int keep_checkpoints = 5;
  // spec::kPrecisions: "fp32", or "bf16": the forward pass under autocast
  // (see nn/precision.h).
  std::string precision = std::string(spec::kPrecisions[0]);
  // "auto" (channels_last on CUDA), "channels_last" or "contiguous".
  std::string memory_format = "auto";
  // Where training JPEGs are decoded: "cpu" (the --num_preprocess_threads),
  // "gpu" (nvJPEG on the training GPU), or "auto": the CPU, moving to the
  // GPU when steps wait for input (see device_input/training_input.h).
  std::string decode = "auto";
  // Intra-op threads for LibTorch; 0 keeps LibTorch's default.
  int num_intra_op_threads = 0;
  // This process's rank in a data-parallel job (world_size 1: alone). Each
  // rank takes batch_size / world_size examples per step.
  RankOptions rank;
};

struct EvalOptions {
  std::string data_dir;
  std::string checkpoint_dir;
  std::string subset = "validation";
  int batch_size = 100;
  int image_size = 0;
  int num_preprocess_threads = spec::kDefaultNumPreprocessThreads;
  bool run_once = false;
  int eval_interval_secs = 300;
  // Write precision events here too (default: checkpoint_dir/eval).
  std::string eval_dir;
};

}  // namespace retrain::trainer
