// Training and evaluation runs: what `retrain-trainer train` and
// `retrain-trainer eval` do. Progress goes to stderr as log lines and to
// stdout as one JSON object per line (for the worker that supervises the
// trainer):
//   {"event":"step","step":10,"max_steps":100,"epoch":0.3,"loss":2.1,
//    "learning_rate":0.1,"examples_per_sec":812.5,"sec_per_batch":0.039}
//   {"event":"checkpoint","step":100,"path":"..."}
//   {"event":"eval","step":100,"precision_at_1":0.98,"precision_at_5":1,
//    "num_examples":2000}
//   {"event":"done","step":100,"loss":0.05}
#pragma once

#include "trainer/train_options.h"

namespace retrain::trainer {

struct EvalResult {
  int64_t num_examples = 0;
  double precision_at_1 = 0;
  double precision_at_5 = 0;
  int64_t step = 0;
  std::string checkpoint;
};

// Trains until max_steps (or num_epochs) and writes the final checkpoint.
// Resumes from the newest checkpoint in train_dir when there is one.
// Returns early, after a checkpoint, when RequestStop() is called (SIGTERM).
// Throws TrainerError.
void Train(const TrainOptions& options);

// Evaluates the newest checkpoint (its moving averages) once, or every
// eval_interval_secs until stopped. Throws TrainerError.
EvalResult Evaluate(const EvalOptions& options);

// Throws TrainerError(kConfig) unless batch_size splits evenly among
// world_size ranks (each takes batch_size / world_size, as the reference
// splits its batch across GPUs).
void CheckBatchSplit(int batch_size, int world_size);

// Asks a running Train()/Evaluate() to checkpoint (training) and return.
// Async-signal-safe.
void RequestStop();

}  // namespace retrain::trainer
