#include "trainer/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/system_memory.h"
#include "trainer/checkpoint.h"
#include "trainer/distributed/communicator.h"
#include "trainer/distributed/batch_norm_sync.h"
#include "trainer/distributed/gradient_reducer.h"
#include "trainer/device_input/training_input.h"
#include "trainer/event_writer.h"
#include "trainer/input/dataset_manifest.h"
#include "trainer/input/input_pipeline.h"
#include "trainer/input/memory_plan.h"
#include "trainer/nn/learning_rate.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/model.h"
#include "trainer/nn/moving_average.h"
#include "trainer/nn/precision.h"
#include "trainer/nn/rmsprop_tf.h"
#include "trainer/nn/step_memory.h"
#include "trainer/trainer_error.h"
#include "trainer/trainer_log.h"

namespace retrain::trainer {

namespace {

using Clock = std::chrono::steady_clock;
volatile std::sig_atomic_t g_stop = 0;

void Emit(const nlohmann::json& event) {
  std::cout << event.dump() << std::endl;
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
  p.distort = o.augmentation == spec::kAugmentations[0];  // "inception"
  p.seed = o.seed;
  p.rank = o.rank.rank;
  p.world_size = o.rank.world_size;
  p.batch_size = o.batch_size / o.rank.world_size;
  // No records may drop out of an evaluation; training stops on bad data
  // unless told to skip it.
  p.skip_corrupt_records = train && o.skip_corrupt_records;
  return p;
}

// Refuses a host-memory plan that does not fit, naming the knobs.
void CheckMemoryPlan(const MemoryPlan& plan, const TrainOptions& o) {
  if (o.rank.rank == 0) LogInfo(plan.description);
  // The ranks of a host share its memory.
  const int64_t needed = plan.total_bytes * o.rank.local_world_size;
  const int64_t available = AvailableMemoryBytes();
  if (available > 0 && needed > available) {
    throw TrainerError(
        TrainerError::Kind::kConfig,
        "the input pipeline needs " + HumanBytes(needed) + " of host memory (" +
            std::to_string(o.rank.local_world_size) + " rank(s) on this host) and " +
            HumanBytes(available) + " is available; lower --input_queue_memory_factor (now " +
            std::to_string(o.input_queue_memory_factor) + "; the shuffle buffer takes " +
            HumanBytes(plan.shuffle_buffer_bytes) + ") or --batch_size (now " +
            std::to_string(o.batch_size) + ")");
  }
}

void CheckFinite(double loss, int64_t step, double lr) {
  if (!std::isfinite(loss)) {
    throw TrainerError(TrainerError::Kind::kNumerical,
                       "the loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") +
                           " at step " + std::to_string(step) +
                           ": training diverged; lower --initial_learning_rate (now " +
                           std::to_string(lr) + ") and start again from the last checkpoint");
  }
}

// LibTorch reports allocation failures as c10::Error (CUDA's as its
// OutOfMemoryError subclass); they become kOutOfMemory naming the batch.
bool IsOutOfMemory(const c10::Error& e) {
  const std::string what = e.what_without_backtrace();
  return what.find("out of memory") != std::string::npos || what.find("alloc") != std::string::npos;
}

void ThrowIfOutOfMemory(const c10::Error& e, int per_rank_batch) {
  if (IsOutOfMemory(e)) {
    throw TrainerError(TrainerError::Kind::kOutOfMemory,
                       "out of memory in a training step at " + std::to_string(per_rank_batch) +
                           " examples per rank (--batch_size / ranks); lower --batch_size");
  }
}

void CheckTrainOptions(const TrainOptions& o) {
  auto fail = [](const std::string& why) { throw TrainerError(TrainerError::Kind::kConfig, why); };
  if (o.data_dir.empty()) fail("--data_dir is required");
  if (o.train_dir.empty()) fail("--train_dir is required");
  if (o.batch_size < 1 && o.batch_size != kAutoBatchSize) {
    fail("--batch_size must be at least 1 (or auto on GPUs)");
  }
  if (!spec::IsOneOf(o.augmentation, spec::kAugmentations)) {
    fail("--augmentation must be " + spec::OneOf(spec::kAugmentations) + ", not '" +
         o.augmentation + "'");
  }
  const RankOptions& r = o.rank;
  if (r.world_size < 1 || r.rank < 0 || r.rank >= r.world_size) {
    fail("--rank must be in [0, --world_size), not " + std::to_string(r.rank) + " of " +
         std::to_string(r.world_size));
  }
  CheckBatchSplit(o.batch_size, r.world_size);
}

torch::Device TrainingDevice(const RankOptions& r) {
  if (!r.use_cuda) return torch::Device(torch::kCPU);
  if (!torch::cuda::is_available()) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       "--num_gpus needs CUDA and this LibTorch or machine has none; use "
                       "--num_replicas for CPU ranks");
  }
  if (r.local_rank >= static_cast<int>(torch::cuda::device_count())) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       "rank " + std::to_string(r.rank) + " wants GPU " +
                           std::to_string(r.local_rank) + " and this host has " +
                           std::to_string(torch::cuda::device_count()));
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(r.local_rank));
}

// The model's share of the device's memory (weights, buffers, RMSProp's two
// slots per weight and, on rank 0, the moving averages) and what a step
// adds, as measured by a probe of the same model on the same device.
std::string DescribeDeviceMemory(const StepMemory& m, const torch::Device& device, int batch) {
  const int64_t state = ModelStateBytes(m, /*with_averages=*/true);
  return Printf(
      "device memory on %s: weights %s, buffers %s, optimizer state %s, moving averages %s; "
      "a training step %s + %s per example (measured at batch %d and %d) = %s at %d examples "
      "per rank; %s in all",
      device.str().c_str(), HumanBytes(m.weights_bytes).c_str(),
      HumanBytes(m.buffers_bytes).c_str(), HumanBytes(2 * m.weights_bytes).c_str(),
      HumanBytes(m.weights_bytes + m.buffers_bytes).c_str(), HumanBytes(m.fixed_bytes).c_str(),
      HumanBytes(m.bytes_per_example).c_str(), m.batch_a, m.batch_b,
      HumanBytes(m.StepBytes(batch)).c_str(), batch,
      HumanBytes(state + m.StepBytes(batch)).c_str());
}

// --batch_size auto: the largest per-rank batch (a multiple of 8) whose
// training pass fits on this rank's GPU beside the model, its optimizer
// state and moving averages (allocated already), found by trying passes on
// a probe copy of the model, less a tenth for the input and the allocator's
// fragmentation; times the ranks.
int ChooseBatchSize(const TrainOptions& o, int num_classes, int image_size,
                    const torch::Device& device, Precision precision,
                    torch::MemoryFormat memory_format) {
  if (!device.is_cuda()) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       "--batch_size auto finds the largest batch a GPU holds; CPU ranks need a "
                       "number (--batch_size N)");
  }
  constexpr int kMultiple = 8;
  StepMemoryProbe probe(o.model, num_classes, image_size, device, precision, memory_format);
  const int largest = LargestFittingBatch(
      [&](int batch) {
        try {
          probe.PeakOfPass(batch);
          return true;
        } catch (const c10::Error& e) {
          if (IsOutOfMemory(e)) return false;
          throw;
        }
      },
      kMultiple, /*max_batch=*/4096);
  const int per_rank = largest * 9 / 10 / kMultiple * kMultiple;
  if (per_rank < kMultiple) {
    throw TrainerError(TrainerError::Kind::kOutOfMemory,
                       "--batch_size auto: " + std::to_string(largest) + " examples of " +
                           o.model + " fit on " + device.str() + ", fewer than " +
                           std::to_string(kMultiple) +
                           " once a tenth is kept free; use --precision bf16, a smaller "
                           "--image_size or a larger GPU");
  }
  if (o.rank.rank == 0) {
    LogInfo(Printf(
        "--batch_size auto: %d examples per rank fit on %s (largest tried: %d); "
        "batch %d over %d rank(s)",
        per_rank, device.str().c_str(), largest, per_rank * o.rank.world_size, o.rank.world_size));
  }
  return per_rank * o.rank.world_size;
}

// After each step the ranks agree on the mean loss (NaN anywhere makes it
// NaN everywhere, so every rank stops alike), on stopping (any rank asked)
// and on a time-based checkpoint (rank 0's clock decides).
struct StepAgreement {
  double mean_loss = 0;
  bool stop = false;
  bool checkpoint_due = false;
};

StepAgreement Agree(Communicator* comm, double loss, bool stop, bool checkpoint_due) {
  if (comm == nullptr) return {loss, stop, checkpoint_due};
  auto t = torch::tensor({loss, stop ? 1.0 : 0.0, checkpoint_due ? 1.0 : 0.0},
                         torch::TensorOptions().dtype(torch::kFloat64));
  comm->AllReduceSum(t, "the step agreement");
  auto a = t.accessor<double, 1>();
  return {a[0] / comm->size(), a[1] > 0, a[2] > 0};
}

// Every rank must start from the same state: the same checkpoint (rank 0
// says which step), then rank 0's weights and buffers.
void AgreeOnStart(Communicator& comm, Model& model, int64_t step) {
  auto rank0_step = torch::tensor({step}, torch::TensorOptions().dtype(torch::kInt64));
  comm.BroadcastFromRankZero({rank0_step}, "the start-up broadcast");
  if (rank0_step.item<int64_t>() != step) {
    throw TrainerError(
        TrainerError::Kind::kConfig,
        "rank " + std::to_string(comm.rank()) + " finds its newest checkpoint at step " +
            std::to_string(step) + " in --train_dir and rank 0 at step " +
            std::to_string(rank0_step.item<int64_t>()) +
            ": every rank must see the same --train_dir (shared storage across hosts)");
  }
  std::vector<torch::Tensor> state;
  for (auto& p : model.parameters()) state.push_back(p);
  for (auto& b : model.buffers()) state.push_back(b);
  comm.BroadcastFromRankZero(state, "the start-up broadcast");
}

// --batch_size auto: every rank must take the same share; rank 0's GPU
// decides and a rank whose GPU chose less says so.
void AgreeOnBatchSize(Communicator& comm, int batch_size) {
  auto rank0 = torch::tensor({static_cast<int64_t>(batch_size)},
                             torch::TensorOptions().dtype(torch::kInt64));
  comm.BroadcastFromRankZero({rank0}, "the batch-size broadcast");
  if (rank0.item<int64_t>() > batch_size) {
    throw TrainerError(
        TrainerError::Kind::kOutOfMemory,
        Printf("--batch_size auto: rank %d fits a batch of %d and rank 0 chose %lld: "
               "give --batch_size %d",
               comm.rank(), batch_size, static_cast<long long>(rank0.item<int64_t>()), batch_size));
  }
}

// What a checkpoint keeps of the input: one rank's position as is, or, in
// a job of several ranks, {"world_size": W, "ranks": [position, ...]}
// gathered by rank 0 through the rendezvous store (empty on other ranks).
std::string GatherInputPositions(Communicator* comm, const std::string& mine, int64_t step) {
  if (comm == nullptr) return mine;
  const std::string prefix = "input_position/" + std::to_string(step) + "/";
  if (comm->rank() != 0) {
    comm->SetValue(prefix + std::to_string(comm->rank()), mine);
    return {};
  }
  nlohmann::json ranks = nlohmann::json::array({mine});
  for (int k = 1; k < comm->size(); ++k) {
    ranks.push_back(comm->GetValue(prefix + std::to_string(k)));
    comm->DeleteValue(prefix + std::to_string(k));
  }
  return nlohmann::json{{"world_size", comm->size()}, {"ranks", ranks}}.dump();
}

// This rank's input position in a checkpoint's, or "" (start the input
// afresh) when the checkpoint comes from a job with another number of ranks.
std::string SelectInputPosition(const std::string& saved, const RankOptions& r) {
  if (saved.empty()) return saved;
  const auto j = nlohmann::json::parse(saved, nullptr, false);
  const bool per_rank = j.is_object() && j.contains("ranks") && j.contains("world_size");
  const int saved_world = per_rank ? j.at("world_size").get<int>() : 1;
  if (saved_world != r.world_size) {
    if (r.rank == 0) {
      LogWarning(Printf("the checkpoint was written by %d ranks and this job has %d: the step "
                        "count continues, the input starts a fresh pass",
                        saved_world, r.world_size));
    }
    return {};
  }
  return per_rank ? j.at("ranks").at(r.rank).get<std::string>() : saved;
}

}  // namespace

void RequestStop() { g_stop = 1; }

void CheckBatchSplit(int batch_size, int world_size) {
  if (batch_size == kAutoBatchSize) return;  // chosen as a multiple of the ranks
  if (world_size > 0 && batch_size % world_size != 0) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       "--batch_size " + std::to_string(batch_size) + " does not divide among " +
                           std::to_string(world_size) + " ranks; give a multiple of " +
                           std::to_string(world_size));
  }
}

void Train(const TrainOptions& options) {
  TrainOptions o = options;  // batch_size is resolved below when auto
  const RankOptions& r = o.rank;
  CheckTrainOptions(o);
  const bool leader = r.rank == 0;
  if (o.num_intra_op_threads > 0) torch::set_num_threads(o.num_intra_op_threads);
  torch::manual_seed(o.seed);
  const torch::Device device = TrainingDevice(r);
  const Precision precision = ParsePrecision(o.precision);
  const torch::MemoryFormat memory_format = ParseMemoryFormat(o.memory_format, device);
  const DecodePlace decode = ParseDecodePlace(o.decode);
  CheckDecodePlace(decode, device);

  const DatasetManifest manifest = LoadDatasetManifest(o.data_dir);
  const int64_t examples_per_epoch = manifest.split("train").num_records;
  ModelPtr model = CreateModel(o.model, manifest.num_classes);
  const int image_size = o.image_size > 0 ? o.image_size : model->DefaultImageSize();
  if (o.max_steps <= 0 && o.num_epochs <= 0) {
    throw TrainerError(TrainerError::Kind::kConfig, "give --max_steps or --num_epochs");
  }

  CheckpointManager checkpoints(o.train_dir, o.keep_checkpoints);
  if (leader) checkpoints.RemoveAbandonedTemporaries();
  const auto latest = checkpoints.Latest();
  if (!latest && !o.pretrained_model_checkpoint_path.empty()) {
    // Fine-tuning: weights only; the step and optimizer state start fresh.
    LoadWeights(o.pretrained_model_checkpoint_path, *model, o.fine_tune,
                /*use_moving_averages=*/false);
    if (leader) {
      LogInfo("starting from the weights of " + o.pretrained_model_checkpoint_path +
              (o.fine_tune ? " (classifier layers fresh)" : ""));
    }
  }
  model->to(device);
  ApplyMemoryFormat(*model, memory_format);
  RmsPropTfOptions opt_options;
  opt_options.lr(o.initial_learning_rate)
      .decay(o.rmsprop_decay)
      .momentum(o.momentum)
      .epsilon(o.rmsprop_epsilon);
  RmsPropTf optimizer(model->parameters(), opt_options);
  ExponentialMovingAverage ema(*model);
  const bool auto_batch = o.batch_size == kAutoBatchSize;
  if (auto_batch) {
    o.batch_size =
        ChooseBatchSize(o, manifest.num_classes, image_size, device, precision, memory_format);
  }
  int64_t max_steps = o.max_steps;
  if (max_steps <= 0) {
    max_steps = static_cast<int64_t>(std::ceil(o.num_epochs * examples_per_epoch / o.batch_size));
  }
  const int64_t decay_steps = DecaySteps(examples_per_epoch, o.batch_size, o.num_epochs_per_decay);

  CheckpointMeta meta;
  meta.model = o.model;
  meta.num_classes = manifest.num_classes;
  meta.image_size = image_size;
  meta.seed = static_cast<int64_t>(o.seed);
  meta.labels = manifest.labels;
  std::string input_position;
  if (latest) {
    // --train_dir is never wiped: its checkpoints mean resume.
    const CheckpointMeta saved = ReadCheckpointMeta(*latest);
    RestoreCheckpoint(*latest, *model, &ema, &optimizer);
    meta.step = saved.step;
    input_position = SelectInputPosition(saved.input_position, r);
    if (leader) LogInfo("resuming from " + *latest + " at step " + std::to_string(meta.step));
  }

  std::unique_ptr<Communicator> comm;
  std::unique_ptr<GradientReducer> reducer;
  if (r.distributed()) {
    comm = Communicator::Connect(r);
    AgreeOnStart(*comm, *model, meta.step);
    if (auto_batch) AgreeOnBatchSize(*comm, o.batch_size);
    reducer = std::make_unique<GradientReducer>(model->parameters(), *comm);
    if (leader) {
      LogInfo(Printf("rank 0 of %d (%s): %d examples per rank and step, gradients in %d buckets",
                     r.world_size, comm->backend(), o.batch_size / r.world_size,
                     reducer->num_buckets()));
    }
    if (o.sync_batch_norm) {
      const int layers =
          SynchroniseBatchNorm(*model, std::make_shared<CommunicatorBatchNormSync>(*comm));
      if (leader) {
        LogInfo(Printf("batch norm synchronised over the %d ranks (%d layers)", r.world_size,
                       layers));
      }
    }
  }

  if (leader) {
    const StepMemory m = MeasureStepMemory(o.model, manifest.num_classes, image_size, device,
                                           precision, memory_format);
    LogInfo(DescribeDeviceMemory(m, device, o.batch_size / r.world_size));
  }
  InputPipeline::Options pipeline_options = PipelineOptions(o, image_size, /*train=*/true);
  CheckMemoryPlan(PlanInputMemory(pipeline_options, manifest), o);
  TrainingInput::Options input_options;
  input_options.pipeline = pipeline_options;
  input_options.device = device;
  input_options.memory_format = memory_format;
  input_options.decode = decode;
  input_options.log = leader;
  TrainingInput input(input_options, manifest);
  if (!input_position.empty()) {
    input.Seek(InputPipeline::Position::FromJson(input_position));
  }
  std::unique_ptr<EventWriter> events;
  if (leader) {
    events = EventWriter::Create(o.train_dir);
    LogInfo(Printf("training %s (%d classes, %d px) on %lld examples per epoch, batch %d, "
                   "%lld steps, on %s in %s, %s",
                   o.model.c_str(), manifest.num_classes, image_size,
                   static_cast<long long>(examples_per_epoch), o.batch_size,
                   static_cast<long long>(max_steps), device.str().c_str(), o.precision.c_str(),
                   memory_format == torch::MemoryFormat::ChannelsLast ? "channels-last"
                                                                       : "contiguous"));
  }

  model->train();
  auto save = [&](int64_t step) {
    // Every rank's input position; only rank 0 writes the checkpoint.
    meta.step = step;
    meta.input_position = GatherInputPositions(comm.get(), input.position().ToJson(), step);
    if (!leader) return;
    const std::string path = checkpoints.Save(meta, *model, ema, optimizer);
    Emit({{"event", "checkpoint"}, {"step", step}, {"path", path}});
    LogInfo("checkpoint " + path);
  };
  int64_t step = meta.step;
  auto last_log = Clock::now();
  auto last_checkpoint = Clock::now();
  int64_t examples_since_log = 0;
  int64_t steps_since_log = 0;
  double loss_value = 0;
  bool stopped = false;
  torch::Tensor images, labels;
  while (step < max_steps) {
    input.Next(&images, &labels);
    const double lr = StaircaseLearningRate(step, o.initial_learning_rate, decay_steps,
                                            o.learning_rate_decay_factor);
    optimizer.SetLearningRate(lr);
    // Dropout draws from a stream fixed by (seed, rank, step): a resumed run
    // continues the same trajectory as one that was never stopped.
    torch::manual_seed(o.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(step) +
                       static_cast<uint64_t>(r.rank) * 0xD1B54A32D192ED03ull);
    optimizer.ClearGradients();
    if (reducer) reducer->Prepare();
    double local_loss = 0;
    try {
      ModelOutput out;
      {
        AutocastScope autocast(device, precision);
        out = model->Forward(images);
      }
      // The loss in fp32 whatever the forward pass ran in.
      out.logits = out.logits.to(torch::kFloat32);
      if (out.aux_logits.defined()) out.aux_logits = out.aux_logits.to(torch::kFloat32);
      LossTerms loss = ComputeLoss(*model, out, labels);
      local_loss = loss.total.item<double>();
      if (!comm) CheckFinite(local_loss, step, lr);
      loss.total.backward();
    } catch (const c10::Error& e) {
      ThrowIfOutOfMemory(e, o.batch_size / r.world_size);
      throw;
    }
    if (reducer) reducer->Finish();
    const bool checkpoint_by_time =
        o.checkpoint_every_secs > 0 &&
        Clock::now() - last_checkpoint > std::chrono::seconds(o.checkpoint_every_secs);
    const StepAgreement agreed =
        Agree(comm.get(), local_loss, g_stop != 0, leader && checkpoint_by_time);
    CheckFinite(agreed.mean_loss, step, lr);
    optimizer.step();
    ++step;
    if (leader) ema.Apply(step);
    examples_since_log += labels.size(0) * r.world_size;
    ++steps_since_log;
    loss_value = agreed.mean_loss;
    if (leader && (step % o.log_every_steps == 0 || step == max_steps)) {
      const double secs = std::chrono::duration<double>(Clock::now() - last_log).count();
      const double rate = secs > 0 ? examples_since_log / secs : 0;
      const double epoch = static_cast<double>(step) * o.batch_size / examples_per_epoch;
      const double sec_per_batch = secs / std::max<int64_t>(steps_since_log, 1);
      const double allreduce_ms =
          reducer ? 1000 * reducer->TakeWaitSeconds() / std::max<int64_t>(steps_since_log, 1) : 0;
      LogInfo(Printf("step %lld, loss = %.4f, lr = %.5f (%.1f examples/sec; %.3f sec/batch%s)",
                     static_cast<long long>(step), loss_value, lr, rate, sec_per_batch,
                     reducer ? Printf("; all-reduce wait %.1f ms", allreduce_ms).c_str() : ""));
      nlohmann::json event = {{"event", "step"},
                              {"step", step},
                              {"max_steps", max_steps},
                              {"epoch", epoch},
                              {"loss", loss_value},
                              {"learning_rate", lr},
                              {"examples_per_sec", rate},
                              {"sec_per_batch", sec_per_batch}};
      if (reducer) event["allreduce_wait_ms"] = allreduce_ms;
      Emit(event);
      events->AddScalar("total_loss", static_cast<float>(loss_value), step);
      events->AddScalar("learning_rate", static_cast<float>(lr), step);
      events->AddScalar("examples_per_sec", static_cast<float>(rate), step);
      events->Flush();
      last_log = Clock::now();
      examples_since_log = 0;
      steps_since_log = 0;
    }
    if (agreed.stop) {
      stopped = true;
      break;
    }
    const bool by_steps = o.checkpoint_every_steps > 0 && step % o.checkpoint_every_steps == 0;
    if ((by_steps || agreed.checkpoint_due) && step < max_steps) {
      save(step);
      last_checkpoint = Clock::now();
    }
  }
  save(step);
  if (!leader) return;
  events->Flush();
  Emit({{"event", "done"}, {"step", step}, {"loss", loss_value}, {"stopped", stopped}});
  LogInfo((stopped ? "stopped on request at step " : "finished at step ") + std::to_string(step));
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
      CheckpointModel loaded = LoadCheckpointModel(*latest, /*use_moving_averages=*/true);
      const CheckpointMeta& meta = loaded.meta;
      ModelPtr model = loaded.model;
      if (meta.num_classes != manifest.num_classes) {
        throw TrainerError(TrainerError::Kind::kConfig,
                           *latest + " has " + std::to_string(meta.num_classes) +
                               " classes and the dataset " + std::to_string(manifest.num_classes));
      }
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
