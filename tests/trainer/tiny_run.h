// A few training steps of the small model on a tiny dataset of 3 classes
// ("class1".."class3", 0 the background): a real checkpoint for the tests
// of what reads one (classify, export).
#pragma once

#include <string>

#include "tests/trainer/input/test_dataset.h"
#include "trainer/trainer.h"

namespace retrain::trainer::testing {

struct TinyRun {
  std::string data;       // the dataset
  std::string train_dir;  // checkpoints model.ckpt-<steps> and earlier
};

// Trains `steps` steps in new temporary directories named after `name`.
inline TinyRun TrainTinyRun(const std::string& name, int steps) {
  TinyRun r{MakeTempDir(name + "-data"), MakeTempDir(name + "-run")};
  DatasetSpec spec;
  spec.num_labels = 3;
  spec.splits = {{"train", 24, 1, 40, 40, false, 90}};
  WriteDataset(r.data, spec);
  TrainOptions o;
  o.data_dir = r.data;
  o.train_dir = r.train_dir;
  o.model = "small";
  o.batch_size = 8;
  o.max_steps = steps;
  o.image_size = 32;
  o.input_queue_memory_factor = 0;
  o.num_preprocess_threads = 1;
  o.num_readers = 1;
  o.num_intra_op_threads = 1;
  Train(o);
  return r;
}

}  // namespace retrain::trainer::testing
