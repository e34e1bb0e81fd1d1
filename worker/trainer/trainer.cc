#include "worker/trainer/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "worker/trainer/checkpoint.h"
#include "worker/trainer/event_writer.h"
#include "worker/trainer/input/dataset_manifest.h"
#include "worker/trainer/input/input_pipeline.h"
#include "worker/trainer/input/memory_plan.h"
#include "worker/trainer/nn/learning_rate.h"
#include "worker/trainer/nn/loss.h"
#include "worker/trainer/nn/model.h"
#include "worker/trainer/nn/moving_average.h"
#include "worker/trainer/nn/rmsprop_tf.h"
#include "worker/trainer/trainer_error.h"
#include "worker/trainer/trainer_log.h"

namespace retrain::trainer {

namespace {

using Clock = std::chrono::steady_clock;
volatile std::sig_atomic_t g_stop = 0;

void Emit(const nlohmann::json& event) {
  std::cout << event.dump() << std::endl;
}

// Bytes of memory the system can still give, from /proc/meminfo.
int64_t AvailableMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return -1;
}

InputPipeline::Options PipelineOptions(const TrainOptions& o, int image_size, bool train) {
  InputPipeline::Options p;
  p.data_dir = o.data_dir;
  p.split = train ? "train" : "validation";
  p.batch_size = o.batch_size;
  p.image_size = image_size;
  p.num_preprocess_threads = o.num_preprocess_threads;
  p.num_readers = o.num_readers;
  p.input_queue_memory_factor = o.input_queue_memory_factor;
  p.train = train;
  p.distort = o.augmentation == "inception";
  p.seed = o.seed;
  // No records may drop out of an evaluation; training stops on bad data.
  p.skip_corrupt_records = false;
  return p;
}

// Refuses a host-memory plan that does not fit, naming the knobs.
void CheckMemoryPlan(const MemoryPlan& plan, const TrainOptions& o) {
  LogInfo(plan.description);
  const int64_t available = AvailableMemoryBytes();
  if (available > 0 && plan.total_bytes > available) {
    throw TrainerError(
        TrainerError::Kind::kConfig,
        "the input pipeline needs " + HumanBytes(plan.total_bytes) + " of host memory and " +
            HumanBytes(available) + " is available; lower --input_queue_memory_factor (now " +
            std::to_string(o.input_queue_memory_factor) + "; the shuffle buffer takes " +
            HumanBytes(plan.shuffle_buffer_bytes) + ") or --batch_size (now " +
            std::to_string(o.batch_size) + ")");
  }
}

void CheckFinite(const torch::Tensor& loss, int64_t step, double lr) {
  const double value = loss.item<double>();
  if (!std::isfinite(value)) {
    throw TrainerError(TrainerError::Kind::kNumerical,
                       "the loss is " + std::string(std::isnan(value) ? "NaN" : "infinite") +
                           " at step " + std::to_string(step) +
                           ": training diverged; lower --initial_learning_rate (now " +
                           std::to_string(lr) + ") and start again from the last checkpoint");
  }
}

}  // namespace

void RequestStop() { g_stop = 1; }

void Train(const TrainOptions& o) {
  if (o.data_dir.empty()) throw TrainerError(TrainerError::Kind::kConfig, "--data_dir is required");
  if (o.train_dir.empty()) {
    throw TrainerError(TrainerError::Kind::kConfig, "--train_dir is required");
  }
  if (o.batch_size < 1) {
    throw TrainerError(TrainerError::Kind::kConfig, "--batch_size must be at least 1");
  }
  if (o.augmentation != "inception" && o.augmentation != "none") {
    throw TrainerError(TrainerError::Kind::kConfig,
                       "--augmentation must be 'inception' or 'none', not '" + o.augmentation + "'");
  }
  if (o.num_intra_op_threads > 0) torch::set_num_threads(o.num_intra_op_threads);
  torch::manual_seed(o.seed);

  const DatasetManifest manifest = LoadDatasetManifest(o.data_dir);
  const int64_t examples_per_epoch = manifest.split("train").num_records;
  ModelPtr model = CreateModel(o.model, manifest.num_classes);
  const int image_size = o.image_size > 0 ? o.image_size : model->DefaultImageSize();
  int64_t max_steps = o.max_steps;
  if (max_steps <= 0 && o.num_epochs > 0) {
    max_steps = static_cast<int64_t>(std::ceil(o.num_epochs * examples_per_epoch / o.batch_size));
  }
  if (max_steps <= 0) {
    throw TrainerError(TrainerError::Kind::kConfig, "give --max_steps or --num_epochs");
  }
  const int64_t decay_steps = DecaySteps(examples_per_epoch, o.batch_size, o.num_epochs_per_decay);

  CheckpointManager checkpoints(o.train_dir, o.keep_checkpoints);
  const auto latest = checkpoints.Latest();
  if (!latest && !o.pretrained_model_checkpoint_path.empty()) {
    // Fine-tuning: weights only; the step and optimizer state start fresh.
    LoadWeights(o.pretrained_model_checkpoint_path, *model, o.fine_tune,
                /*use_moving_averages=*/false);
    LogInfo("starting from the weights of " + o.pretrained_model_checkpoint_path +
            (o.fine_tune ? " (classifier layers fresh)" : ""));
  }
  RmsPropTfOptions opt_options;
  opt_options.lr(o.initial_learning_rate)
      .decay(o.rmsprop_decay)
      .momentum(o.momentum)
      .epsilon(o.rmsprop_epsilon);
  RmsPropTf optimizer(model->parameters(), opt_options);
  ExponentialMovingAverage ema(*model);

  CheckpointMeta meta;
  meta.model = o.model;
  meta.num_classes = manifest.num_classes;
  meta.image_size = image_size;
  meta.seed = static_cast<int64_t>(o.seed);
  if (latest) {
    // --train_dir is never wiped: its checkpoints mean resume.
    const CheckpointMeta saved = ReadCheckpointMeta(*latest);
    RestoreCheckpoint(*latest, *model, &ema, &optimizer);
    meta.step = saved.step;
    meta.input_position = saved.input_position;
    LogInfo("resuming from " + *latest + " at step " + std::to_string(meta.step));
  }

  InputPipeline::Options pipeline_options = PipelineOptions(o, image_size, /*train=*/true);
  CheckMemoryPlan(PlanInputMemory(pipeline_options, manifest), o);
  InputPipeline pipeline(pipeline_options, manifest);
  if (!meta.input_position.empty()) {
    pipeline.Seek(InputPipeline::Position::FromJson(meta.input_position));
  }
  auto events = EventWriter::Create(o.train_dir);
  LogInfo(Printf("training %s (%d classes, %d px) on %lld examples per epoch, batch %d, %lld steps",
                 o.model.c_str(), manifest.num_classes, image_size,
                 static_cast<long long>(examples_per_epoch), o.batch_size,
                 static_cast<long long>(max_steps)));

  model->train();
  auto save = [&](int64_t step) {
    meta.step = step;
    meta.input_position = pipeline.position().ToJson();
    const std::string path = checkpoints.Save(meta, *model, ema, optimizer);
    Emit({{"event", "checkpoint"}, {"step", step}, {"path", path}});
    LogInfo("checkpoint " + path);
  };
  int64_t step = meta.step;
  auto last_log = Clock::now();
  auto last_checkpoint = Clock::now();
  int64_t examples_since_log = 0;
  double loss_value = 0;
  Batch batch;
  while (step < max_steps && !g_stop) {
    if (!pipeline.Next(&batch)) {
      throw TrainerError(TrainerError::Kind::kInternal, "the training input ended");
    }
    const double lr = StaircaseLearningRate(step, o.initial_learning_rate, decay_steps,
                                            o.learning_rate_decay_factor);
    optimizer.SetLearningRate(lr);
    auto images = torch::from_blob(batch.images.data(), {batch.size, 3, batch.height, batch.width},
                                   torch::kFloat32);
    auto labels = torch::from_blob(batch.labels.data(), {batch.size}, torch::kInt64);
    // Dropout draws from a stream fixed by (seed, step): a resumed run
    // continues the same trajectory as one that was never stopped.
    torch::manual_seed(o.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(step));
    optimizer.zero_grad();
    LossTerms loss;
    try {
      ModelOutput out = model->Forward(images);
      loss = ComputeLoss(*model, out, labels);
      CheckFinite(loss.total, step, lr);
      loss.total.backward();
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      if (what.find("alloc") != std::string::npos || what.find("memory") != std::string::npos) {
        throw TrainerError(TrainerError::Kind::kOutOfMemory,
                           "out of memory in a training step at --batch_size " +
                               std::to_string(o.batch_size) + "; lower --batch_size");
      }
      throw;
    }
    optimizer.step();
    ++step;
    ema.Apply(step);
    examples_since_log += batch.size;
    loss_value = loss.total.item<double>();
    if (step % o.log_every_steps == 0 || step == max_steps) {
      const double secs = std::chrono::duration<double>(Clock::now() - last_log).count();
      const double rate = secs > 0 ? examples_since_log / secs : 0;
      const double epoch = static_cast<double>(step) * o.batch_size / examples_per_epoch;
      LogInfo(Printf("step %lld, loss = %.4f, lr = %.5f (%.1f examples/sec; %.3f sec/batch)",
                     static_cast<long long>(step), loss_value, lr, rate,
                     secs * o.batch_size / std::max<int64_t>(examples_since_log, 1)));
      Emit({{"event", "step"},
            {"step", step},
            {"max_steps", max_steps},
            {"epoch", epoch},
            {"loss", loss_value},
            {"learning_rate", lr},
            {"examples_per_sec", rate},
            {"sec_per_batch", secs * o.batch_size / std::max<int64_t>(examples_since_log, 1)}});
      events->AddScalar("total_loss", static_cast<float>(loss_value), step);
      events->AddScalar("learning_rate", static_cast<float>(lr), step);
      events->AddScalar("examples_per_sec", static_cast<float>(rate), step);
      events->Flush();
      last_log = Clock::now();
      examples_since_log = 0;
    }
    const bool by_steps = o.checkpoint_every_steps > 0 && step % o.checkpoint_every_steps == 0;
    const bool by_time =
        o.checkpoint_every_secs > 0 &&
        Clock::now() - last_checkpoint > std::chrono::seconds(o.checkpoint_every_secs);
    if ((by_steps || by_time) && step < max_steps) {
      save(step);
      last_checkpoint = Clock::now();
    }
  }
  save(step);
  events->Flush();
  Emit({{"event", "done"}, {"step", step}, {"loss", loss_value}, {"stopped", g_stop != 0}});
  LogInfo((g_stop ? "stopped on request at step " : "finished at step ") + std::to_string(step));
}

EvalResult Evaluate(const EvalOptions& o) {
  if (o.data_dir.empty()) throw TrainerError(TrainerError::Kind::kConfig, "--data_dir is required");
  if (o.checkpoint_dir.empty()) {
    throw TrainerError(TrainerError::Kind::kConfig, "--checkpoint_dir is required");
  }
  const DatasetManifest manifest = LoadDatasetManifest(o.data_dir);
  CheckpointManager checkpoints(o.checkpoint_dir, 1 << 30);
  std::unique_ptr<EventWriter> events;
  std::string last_evaluated;
  EvalResult result;
  while (!g_stop) {
    auto latest = checkpoints.Latest();
    if (!latest) {
      if (o.run_once) {
        throw TrainerError(TrainerError::Kind::kConfig,
                           "--checkpoint_dir " + o.checkpoint_dir + " holds no checkpoint");
      }
    } else if (*latest != last_evaluated) {
      const CheckpointMeta meta = ReadCheckpointMeta(*latest);
      ModelPtr model = CreateModel(meta.model, static_cast<int>(meta.num_classes));
      if (meta.num_classes != manifest.num_classes) {
        throw TrainerError(TrainerError::Kind::kConfig,
                           *latest + " has " + std::to_string(meta.num_classes) +
                               " classes and the dataset " + std::to_string(manifest.num_classes));
      }
      LoadWeights(*latest, *model, /*skip_classifier=*/false, /*use_moving_averages=*/true);
      model->eval();
      torch::NoGradGuard no_grad;
      TrainOptions as_train;
      as_train.data_dir = o.data_dir;
      as_train.batch_size = o.batch_size;
      as_train.num_preprocess_threads = o.num_preprocess_threads;
      as_train.num_readers = 1;
      as_train.input_queue_memory_factor = 0;
      InputPipeline::Options p = PipelineOptions(
          as_train, o.image_size > 0 ? o.image_size : static_cast<int>(meta.image_size), false);
      p.split = o.subset;
      InputPipeline pipeline(p, manifest);
      Batch batch;
      int64_t n = 0, top1 = 0, top5 = 0;
      while (pipeline.Next(&batch)) {
        auto images = torch::from_blob(batch.images.data(),
                                       {batch.size, 3, batch.height, batch.width}, torch::kFloat32);
        auto labels = torch::from_blob(batch.labels.data(), {batch.size}, torch::kInt64);
        auto logits = model->Forward(images).logits;
        const int k = std::min<int64_t>(5, logits.size(1));
        auto topk = std::get<1>(logits.topk(k, 1));
        auto hits = topk.eq(labels.unsqueeze(1));
        top1 += hits.select(1, 0).sum().item<int64_t>();
        top5 += hits.any(1).sum().item<int64_t>();
        n += batch.size;
      }
      result.num_examples = n;
      result.precision_at_1 = n > 0 ? static_cast<double>(top1) / n : 0;
      result.precision_at_5 = n > 0 ? static_cast<double>(top5) / n : 0;
      result.step = meta.step;
      result.checkpoint = *latest;
      LogInfo(Printf("%s: precision @ 1 = %.4f recall @ 5 = %.4f [%lld examples]", latest->c_str(),
                     result.precision_at_1, result.precision_at_5, static_cast<long long>(n)));
      Emit({{"event", "eval"},
            {"step", meta.step},
            {"checkpoint", *latest},
            {"precision_at_1", result.precision_at_1},
            {"precision_at_5", result.precision_at_5},
            {"num_examples", n}});
      if (!events) {
        events = EventWriter::Create(o.eval_dir.empty() ? o.checkpoint_dir + "/eval" : o.eval_dir);
      }
      events->AddScalar("precision_at_1", static_cast<float>(result.precision_at_1), meta.step);
      events->AddScalar("recall_at_5", static_cast<float>(result.precision_at_5), meta.step);
      events->Flush();
      last_evaluated = *latest;
    }
    if (o.run_once) break;
    for (int i = 0; i < o.eval_interval_secs * 10 && !g_stop; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return result;
}

}  // namespace retrain::trainer
