// retrain-trainer: trains and evaluates image classifiers on datasets built
// by `retrain build-dataset`.
//
// Exit codes: trainer/spec/exit_codes.h.
//
// Data parallelism (as torchrun): --num_replicas N (CPU, Gloo) or
// --num_gpus N (CUDA, NCCL) makes this process a launcher of N local ranks;
// with --nnodes M --node_rank K --master_addr A --master_port P on each of
// M hosts they form one job. --rank R --world_size W (with --master_addr,
// --master_port) runs one rank directly, for other launchers.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "common/system_memory.h"
#include "trainer/classify.h"
#include "trainer/distributed/launcher.h"
#include "trainer/export_weights.h"
#include "trainer/nn/model.h"
#include "trainer/trainer.h"
#include "trainer/trainer_error.h"
#include "trainer/trainer_log.h"

namespace {

void OnSignal(int) { retrain::trainer::RequestStop(); }

// --checkpoint_dir DIR or --checkpoint FILE, as ChooseCheckpoint() takes them.
void AddCheckpointChoice(CLI::App& command, std::string& checkpoint_dir, std::string& checkpoint) {
  auto* dir =
      command.add_option("--checkpoint_dir", checkpoint_dir, "Use the newest checkpoint here");
  auto* file = command.add_option("--checkpoint", checkpoint, "Use this checkpoint file");
  dir->excludes(file);
}

}  // namespace

int main(int argc, char** argv) {
  retrain::KeepFreedMemoryForReuse(retrain::kTrainingHeapReuse);
  using retrain::trainer::EvalOptions;
  using retrain::trainer::TrainOptions;
  namespace spec = retrain::trainer::spec;
  TrainOptions t;
  EvalOptions e;
  std::string log_level = "info";
  CLI::App app{
      "retrain-trainer: train and evaluate image classifiers on TFRecord datasets "
      "built by `retrain build-dataset`, as TensorFlow's Inception scripts do, and "
      "classify images with them or export their weights."};
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
  std::string batch_size = std::to_string(t.batch_size);
  train
      ->add_option("--batch_size", batch_size,
                   "Examples per step over all ranks, or auto (GPUs: the largest that fits)")
      ->check([](const std::string& v) {
        return v == "auto" || (!v.empty() && v.size() < 9 &&
                               v.find_first_not_of("0123456789") == std::string::npos)
                   ? std::string()
                   : std::string("a positive number or auto");
      })
      ->capture_default_str();
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
  train->add_option("--pretrained_model_checkpoint_path", t.pretrained_model_checkpoint_path,
                    "Start from these weights: a checkpoint (model.ckpt-N) or a .safetensors "
                    "file (scripts/weights_to_safetensors.py)");
  train->add_option("--seed", t.seed)->capture_default_str();
  train->add_flag("--sync_batch_norm", t.sync_batch_norm,
                  "Batch-norm statistics over every rank's examples of a step, not per rank");
  train->add_flag("--skip_corrupt_records", t.skip_corrupt_records,
                  "Skip training records that are damaged (bad framing, CRC or image), logging "
                  "each with its file and offset, instead of stopping with a data error");
  train->add_option("--augmentation", t.augmentation, spec::OneOf(spec::kAugmentations))
      ->capture_default_str();
  train->add_option("--log_every_steps", t.log_every_steps)->capture_default_str();
  train->add_option("--checkpoint_every_steps", t.checkpoint_every_steps)->capture_default_str();
  train->add_option("--checkpoint_every_secs", t.checkpoint_every_secs)->capture_default_str();
  train->add_option("--keep_checkpoints", t.keep_checkpoints)->capture_default_str();
  train->add_option("--num_intra_op_threads", t.num_intra_op_threads,
                    "LibTorch threads (default: LibTorch's choice)");
  train->add_option("--precision", t.precision,
                    spec::OneOf(spec::kPrecisions) +
                        " (bf16: forward pass in bfloat16 under autocast; weights stay fp32)")
      ->capture_default_str();
  train->add_option("--memory_format", t.memory_format,
                    "auto (channels_last on CUDA), channels_last or contiguous")
      ->capture_default_str();
  train->add_option("--decode", t.decode,
                    "Where JPEGs are decoded: cpu (--num_preprocess_threads), gpu (nvJPEG), or "
                    "auto (the CPU; the GPU once steps wait for input)")
      ->capture_default_str();
  retrain::trainer::LaunchOptions launch;
  int num_replicas = 0, num_gpus = 0;
  bool direct_rank = false;
  auto* replicas_opt = train->add_option(
      "--num_replicas", num_replicas,
      "CPU ranks on this host (Gloo); each takes batch_size / ranks examples per step");
  auto* gpus_opt = train->add_option("--num_gpus", num_gpus,
                                     "GPU ranks on this host, one per GPU (NCCL)");
  replicas_opt->excludes(gpus_opt);
  train->add_option("--nnodes", launch.nnodes, "Hosts in the job")->capture_default_str();
  train->add_option("--node_rank", launch.node_rank, "This host's number (0 runs rank 0)")
      ->capture_default_str();
  train->add_option("--master_addr", launch.master_addr, "Host of rank 0 (the rendezvous)")
      ->capture_default_str();
  train->add_option("--master_port", launch.master_port,
                    "Rendezvous port (default: a free one; required with --nnodes > 1)");
  auto* rank_opt = train->add_option("--rank", t.rank.rank, "Run as this one rank (no launcher)");
  auto* world_opt = train->add_option("--world_size", t.rank.world_size, "Ranks in the job");
  train->add_option("--local_rank", t.rank.local_rank, "With --rank: this rank's GPU");
  train->add_option("--collective_timeout_secs", launch.collective_timeout_secs,
                    "A collective that takes longer fails (a dead or hung rank)")
      ->capture_default_str();
  train->add_option("--stop_grace_secs", launch.stop_grace_secs,
                    "Launcher: SIGKILL ranks this long after asking them to stop")
      ->capture_default_str();
  rank_opt->needs(world_opt);
  world_opt->needs(rank_opt);

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

  retrain::trainer::ClassifyOptions c;
  auto* classify = app.add_subcommand(
      "classify",
      "The most probable classes of JPEG images under a checkpoint's moving averages, one line "
      "per image (evaluation preprocessing: central crop, the checkpoint's image size).\n"
      "Example: retrain-trainer classify --checkpoint_dir runs/1 photo.jpg more-photos/");
  AddCheckpointChoice(*classify, c.checkpoint_dir, c.checkpoint);
  classify->add_option("--data_dir", c.data_dir,
                       "Dataset that names the classes, for checkpoints that record no names");
  classify->add_option("--top_k", c.top_k, "Classes shown per image")->capture_default_str();
  classify->add_option("--batch_size", c.batch_size)->capture_default_str();
  classify->add_option("--output", c.output, "text or json (one object per line)")
      ->capture_default_str();
  classify->add_option("--device", c.device, "auto (a GPU when there is one), cpu or cuda")
      ->capture_default_str();
  classify->add_option("images", c.inputs, "JPEG files, or directories to search for them")
      ->required();

  retrain::trainer::ExportOptions x;
  auto* export_cmd = app.add_subcommand(
      "export",
      "A checkpoint's weights (moving averages) as a safetensors file, named as torchvision's "
      "models name them: for PyTorch, or as another run's --pretrained_model_checkpoint_path.\n"
      "Example: retrain-trainer export --checkpoint_dir runs/1 --out flowers.safetensors");
  AddCheckpointChoice(*export_cmd, x.checkpoint_dir, x.checkpoint);
  export_cmd->add_option("--out", x.out, "The .safetensors file to write")->required();
  export_cmd->add_flag("--raw_weights", x.raw_weights,
                       "The trained weights instead of their moving averages");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& err) {
    return app.exit(err);
  } catch (const CLI::ParseError& err) {
    std::cerr << "retrain-trainer: " << err.what() << " (see retrain-trainer --help)\n";
    return spec::kExitConfig;
  }
  t.batch_size = batch_size == "auto" ? retrain::trainer::kAutoBatchSize : std::stoi(batch_size);
  // Who this process is: a rank started by a launcher, a launcher, a rank
  // started by another launcher (--rank), or the whole job alone.
  const bool launched = *train && retrain::trainer::RankFromEnvironment(&t.rank);
  direct_rank = *train && !launched && rank_opt->count() > 0;
  const int local_ranks = std::max(num_replicas, num_gpus);
  const bool launcher = *train && !launched && !direct_rank && (local_ranks > 0 || launch.nnodes > 1);
  std::string who = "retrain-trainer: ";
  if (launched || direct_rank) {
    t.rank.master_addr = launched ? t.rank.master_addr : launch.master_addr;
    if (direct_rank) {
      t.rank.master_port = launch.master_port > 0 ? launch.master_port : t.rank.master_port;
      t.rank.collective_timeout_secs = launch.collective_timeout_secs;
      t.rank.use_cuda = num_gpus > 0;
    }
    if (t.rank.world_size > 1) who += "rank " + std::to_string(t.rank.rank) + ": ";
    // Only rank 0 speaks for the job; the others report problems only.
    if (t.rank.rank != 0 && log_level == "info") log_level = "warn";
  }
  retrain::trainer::SetTrainerLogLevel(log_level);
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  try {
    if (launcher) {
      launch.ranks_per_node = std::max(local_ranks, 1);
      launch.use_cuda = num_gpus > 0;
      retrain::trainer::CheckBatchSplit(t.batch_size, launch.ranks_per_node * launch.nnodes);
      return retrain::trainer::LaunchRanks(argv, launch);
    }
    if (*train) retrain::trainer::Train(t);
    if (*eval) retrain::trainer::Evaluate(e);
    if (*export_cmd) retrain::trainer::ExportWeights(x);
    if (*classify) {
      return retrain::trainer::Classify(c, std::cout).skipped > 0 ? spec::kExitBadData
                                                                   : spec::kExitSuccess;
    }
  } catch (const retrain::trainer::TrainerError& err) {
    std::cerr << who << err.what() << "\n";
    return retrain::trainer::ExitCodeOf(err.kind());
  } catch (const c10::Error& err) {
    std::cerr << who << "LibTorch: " << err.what_without_backtrace() << "\n";
    return spec::kExitOther;
  }
  return spec::kExitSuccess;
}
