// retrain-trainer: trains and evaluates image classifiers on datasets built
// by `retrain build-dataset`.
//
// Exit codes: 0 success; 2 usage or configuration error (retrying cannot
// help); 3 bad data; 4 the loss diverged (NaN); 5 out of memory; 1 other.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "worker/trainer/nn/model.h"
#include "worker/trainer/trainer.h"
#include "worker/trainer/trainer_error.h"
#include "worker/trainer/trainer_log.h"

namespace {

void OnSignal(int) { retrain::trainer::RequestStop(); }

int ExitCode(retrain::trainer::TrainerError::Kind kind) {
  using Kind = retrain::trainer::TrainerError::Kind;
  switch (kind) {
    case Kind::kConfig:
      return 2;
    case Kind::kData:
      return 3;
    case Kind::kNumerical:
      return 4;
    case Kind::kOutOfMemory:
      return 5;
    default:
      return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  using retrain::trainer::EvalOptions;
  using retrain::trainer::TrainOptions;
  TrainOptions t;
  EvalOptions e;
  std::string log_level = "info";
  CLI::App app{"retrain-trainer: train and evaluate image classifiers on TFRecord datasets built "
               "by `retrain build-dataset`, as TensorFlow's Inception scripts do."};
  app.require_subcommand(1);
  app.add_option("--log_level", log_level, "trace, debug, info, warn or error");
  app.fallthrough();

  std::string models;
  for (const auto& m : retrain::trainer::ModelNames()) models += (models.empty() ? "" : ", ") + m;
  auto* train = app.add_subcommand(
      "train",
      "Train (or fine-tune) a model; resumes from the newest checkpoint in --train_dir.\n"
      "Example: retrain-trainer train --data_dir out --train_dir runs/1 --model small "
      "--batch_size 64 --max_steps 2000");
  train->add_option("--data_dir", t.data_dir, "Dataset directory (holds dataset.json)")
      ->required();
  train->add_option("--train_dir", t.train_dir, "Checkpoints and event files")->required();
  train->add_option("--model", t.model, "One of: " + models)->capture_default_str();
  train->add_option("--batch_size", t.batch_size)->capture_default_str();
  train->add_option("--max_steps", t.max_steps, "Steps to train (or --num_epochs)");
  train->add_option("--num_epochs", t.num_epochs, "Epochs to train (or --max_steps)");
  train->add_option("--image_size", t.image_size, "Input size (default: the model's)");
  train->add_option("--input_queue_memory_factor", t.input_queue_memory_factor,
                    "Shuffle buffer of 1024 x factor records")
      ->capture_default_str();
  train->add_option("--num_preprocess_threads", t.num_preprocess_threads)->capture_default_str();
  train->add_option("--num_readers", t.num_readers)->capture_default_str();
  train->add_option("--initial_learning_rate", t.initial_learning_rate)->capture_default_str();
  train->add_option("--num_epochs_per_decay", t.num_epochs_per_decay)->capture_default_str();
  train->add_option("--learning_rate_decay_factor", t.learning_rate_decay_factor)
      ->capture_default_str();
  train->add_option("--rmsprop_decay", t.rmsprop_decay)->capture_default_str();
  train->add_option("--momentum", t.momentum)->capture_default_str();
  train->add_option("--rmsprop_epsilon", t.rmsprop_epsilon)->capture_default_str();
  train->add_flag("--fine_tune", t.fine_tune,
                  "With --pretrained_model_checkpoint_path: classifier layers start fresh");
  train->add_option("--pretrained_model_checkpoint_path", t.pretrained_model_checkpoint_path);
  train->add_option("--seed", t.seed)->capture_default_str();
  train->add_option("--augmentation", t.augmentation, "inception or none")
      ->capture_default_str();
  train->add_option("--log_every_steps", t.log_every_steps)->capture_default_str();
  train->add_option("--checkpoint_every_steps", t.checkpoint_every_steps)->capture_default_str();
  train->add_option("--checkpoint_every_secs", t.checkpoint_every_secs)->capture_default_str();
  train->add_option("--keep_checkpoints", t.keep_checkpoints)->capture_default_str();
  train->add_option("--num_intra_op_threads", t.num_intra_op_threads,
                    "LibTorch threads (default: LibTorch's choice)");

  auto* eval = app.add_subcommand(
      "eval",
      "Top-1 and top-5 precision of the newest checkpoint's moving averages.\n"
      "Example: retrain-trainer eval --data_dir out --checkpoint_dir runs/1 --run_once");
  eval->add_option("--data_dir", e.data_dir, "Dataset directory")->required();
  eval->add_option("--checkpoint_dir", e.checkpoint_dir, "Where training wrote checkpoints")
      ->required();
  eval->add_option("--subset", e.subset, "validation or train")->capture_default_str();
  eval->add_option("--batch_size", e.batch_size)->capture_default_str();
  eval->add_option("--image_size", e.image_size, "Default: the checkpoint's");
  eval->add_option("--num_preprocess_threads", e.num_preprocess_threads)->capture_default_str();
  eval->add_flag("--run_once", e.run_once, "Evaluate once and exit");
  eval->add_option("--eval_interval_secs", e.eval_interval_secs)->capture_default_str();
  eval->add_option("--eval_dir", e.eval_dir, "Event files (default: CHECKPOINT_DIR/eval)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& err) {
    return app.exit(err);
  } catch (const CLI::ParseError& err) {
    std::cerr << "retrain-trainer: " << err.what() << " (see retrain-trainer --help)\n";
    return 2;
  }
  retrain::trainer::SetTrainerLogLevel(log_level);
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  try {
    if (*train) retrain::trainer::Train(t);
    if (*eval) retrain::trainer::Evaluate(e);
  } catch (const retrain::trainer::TrainerError& err) {
    std::cerr << "retrain-trainer: " << err.what() << "\n";
    return ExitCode(err.kind());
  } catch (const c10::Error& err) {
    std::cerr << "retrain-trainer: LibTorch: " << err.what_without_backtrace() << "\n";
    return 1;
  }
  return 0;
}
