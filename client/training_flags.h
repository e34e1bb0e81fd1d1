// The flags of `retrain train`: one for each field of TrainingSpec, named as
// the field (and as the trainer's flag the worker passes it on as), found by
// reflection. A knob added to the spec is a flag of the CLI with no code
// here; only its help line, if it has one, is written below.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "retrain/v1/training.pb.h"

namespace retrain::client {

class TrainingFlags {
 public:
  // Declares --<field> on `command` for every field of TrainingSpec:
  // booleans as flags, the rest as options of the field's type (CLI11
  // refuses a value that is not one). --data_dir and --train_dir are
  // required.
  explicit TrainingFlags(CLI::App* command);
  ~TrainingFlags();
  TrainingFlags(const TrainingFlags&) = delete;
  TrainingFlags& operator=(const TrainingFlags&) = delete;

  // The spec the flags given describe: a field whose flag was not given
  // stays unset (the trainer's default applies). Paths (fields named
  // *_dir or *_path) go through `absolute`.
  retrain::v1::TrainingSpec Spec(
      const std::function<std::string(const std::string&)>& absolute) const;

 private:
  struct Flag;
  std::vector<std::unique_ptr<Flag>> flags_;
};

}  // namespace retrain::client
