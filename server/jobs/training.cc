#include "server/jobs/training.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/request_refusal.h"
#include "common/status_macros.h"
#include "dataset/manifest.h"
#include "trainer/spec/memory_plan.h"
#include "trainer/spec/model_catalog.h"
#include "trainer/spec/training_knobs.h"

namespace retrain::server {

namespace v1 = retrain::v1;

namespace {

constexpr int kStopGraceSecs = 30;

// The trainer's defaults where the request leaves a field unset.
int32_t BatchSize(const v1::TrainingSpec& s) {
  return s.has_batch_size() ? s.batch_size() : trainer::spec::kDefaultBatchSize;
}
// Ranks on each worker, workers, and ranks in all.
int32_t RanksPerWorker(const v1::TrainingSpec& s) {
  return std::max({1, s.num_gpus(), s.num_replicas()});
}
int32_t Workers(const v1::TrainingSpec& s) { return std::max(1, s.num_workers()); }
int32_t Ranks(const v1::TrainingSpec& s) { return RanksPerWorker(s) * Workers(s); }

// The input pipeline's memory settings of one rank of `s`: the trainer's
// defaults where the request leaves a field unset.
trainer::InputMemoryOptions InputMemoryOf(const v1::TrainingSpec& s,
                                          const trainer::ModelInfo& model) {
  trainer::InputMemoryOptions o;
  o.batch_size = ExamplesPerRank(s);
  o.image_size = s.image_size() > 0 ? s.image_size() : model.default_image_size;
  if (s.has_num_preprocess_threads()) o.num_preprocess_threads = s.num_preprocess_threads();
  if (s.has_input_queue_memory_factor())
    o.input_queue_memory_factor = s.input_queue_memory_factor();
  return o;
}

// What one GPU rank of `s` needs on its device: weights, gradients,
// RMSProp's two slots and the moving averages (counted on every rank), a
// training step at the per-GPU batch (the catalog's figure at the model's
// own size, scaled by pixels) and CUDA's reserve.
int64_t GpuMemoryPerRank(const v1::TrainingSpec& s, const trainer::ModelInfo& model,
                         int num_classes, int image_size) {
  const int64_t weights = model.WeightsBytes(num_classes);
  const int64_t gradients = weights;
  const int64_t state =
      trainer::ModelStateBytes(weights, model.buffers_bytes, /*with_averages=*/true) + gradients;
  const double pixels = static_cast<double>(image_size) * image_size /
                        (static_cast<double>(model.default_image_size) * model.default_image_size);
  const int64_t per_example =
      s.precision() == "bf16" ? model.step_bytes_per_example_bf16 : model.step_bytes_per_example;
  const int64_t step = static_cast<int64_t>(per_example * pixels) * ExamplesPerRank(s);
  return state + step + trainer::kDeviceReserveBytes;
}

// The weights a run starts from (described by the worker's check) must be
// those of spec.model and, unless spec.fine_tune starts the classifier
// fresh, have the dataset's classes. The trainer checks every tensor again
// on load.
absl::Status CheckPretrainedWeights(const v1::TrainingSpec& s, const v1::WeightsFacts& weights,
                                    int64_t dataset_classes) {
  if (weights.model() != s.model()) {
    return absl::FailedPreconditionError(
        absl::StrCat("spec.pretrained_model_checkpoint_path: the weights are ", weights.model(),
                     "'s and spec.model is ", s.model()));
  }
  if (weights.num_classes() != dataset_classes && !s.fine_tune()) {
    return absl::FailedPreconditionError(
        absl::StrCat("spec.fine_tune: the pretrained weights have ", weights.num_classes(),
                     " classes and the dataset ", dataset_classes,
                     "; set fine_tune so that the classifier layers start fresh"));
  }
  return absl::OkStatus();
}

// The request's fields, and its paths spelled under the data roots: all
// the coordinator checks before a worker reads the files.
absl::StatusOr<v1::TrainingSpec> ValidateTrainingSpec(const v1::TrainingSpec& in,
                                                      const DataRoots& roots) {
  v1::TrainingSpec s = in;
  ASSIGN_OR_RETURN(std::string data_dir, roots.Resolve("spec.data_dir", in.data_dir()));
  ASSIGN_OR_RETURN(std::string train_dir, roots.Resolve("spec.train_dir", in.train_dir()));
  s.set_data_dir(data_dir);
  s.set_train_dir(train_dir);
  if (s.model().empty()) s.set_model("inception_v3");
  const trainer::ModelInfo* model = trainer::FindModelInfo(s.model());
  if (model == nullptr) {
    std::string names;
    for (const auto& m : trainer::ModelCatalog())
      absl::StrAppend(&names, names.empty() ? "" : ", ", m.name);
    return absl::InvalidArgumentError(
        absl::StrCat("spec.model: unknown model '", s.model(), "'; one of: ", names));
  }
  if (s.num_gpus() < 0 || s.num_replicas() < 0) {
    return absl::InvalidArgumentError("spec.num_gpus, spec.num_replicas: must not be negative");
  }
  if (s.num_gpus() > 0 && s.num_replicas() > 0) {
    return absl::InvalidArgumentError(
        "spec.num_replicas: give num_gpus (GPU ranks) or num_replicas (CPU ranks), not both");
  }
  if (BatchSize(s) < 1) return absl::InvalidArgumentError("spec.batch_size: must be at least 1");
  if (s.num_workers() < 0)
    return absl::InvalidArgumentError("spec.num_workers: must not be negative");
  if (BatchSize(s) % Ranks(s) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("spec.batch_size: ", BatchSize(s),
                                                   " does not divide among ", Ranks(s),
                                                   " ranks; give a multiple of ", Ranks(s)));
  }
  if (s.max_steps() <= 0 && s.num_epochs() <= 0) {
    return absl::InvalidArgumentError("spec.max_steps: give max_steps or num_epochs (> 0)");
  }
  using trainer::spec::IsOneOf;
  using trainer::spec::OneOf;
  if (!s.precision().empty() && !IsOneOf(s.precision(), trainer::spec::kPrecisions)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.precision: must be ", OneOf(trainer::spec::kPrecisions)));
  }
  if (!s.augmentation().empty() && !IsOneOf(s.augmentation(), trainer::spec::kAugmentations)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.augmentation: must be ", OneOf(trainer::spec::kAugmentations)));
  }
  if (!s.decode().empty() && !IsOneOf(s.decode(), trainer::spec::kDecodes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.decode: must be ", OneOf(trainer::spec::kDecodes)));
  }
  if (s.decode() == "gpu" && s.num_gpus() < 1) {
    return absl::InvalidArgumentError(
        "spec.decode: gpu decodes on the training GPUs; set spec.num_gpus or use auto or cpu");
  }
  if (s.input_queue_memory_factor() < 0 ||
      (s.has_num_preprocess_threads() && s.num_preprocess_threads() < 1)) {
    return absl::InvalidArgumentError(
        "spec.input_queue_memory_factor: must not be negative; spec.num_preprocess_threads: at "
        "least 1");
  }
  if (!s.pretrained_model_checkpoint_path().empty()) {
    ASSIGN_OR_RETURN(std::string p, roots.Resolve("spec.pretrained_model_checkpoint_path",
                                                  s.pretrained_model_checkpoint_path()));
    s.set_pretrained_model_checkpoint_path(p);
  }
  return s;
}

// The train task of a checked request: the dataset the worker read, the
// checkpoints it found judged against the spec, and what the task needs of
// each worker (the trainer's input pipeline plans the same host memory, and
// prints and checks it).
absl::StatusOr<v1::TrainTask> TrainTaskOf(const v1::TrainingSpec& s,
                                          const v1::CheckTrainingResult& checked) {
  const trainer::ModelInfo* model = trainer::FindModelInfo(s.model());
  if (model == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("spec.model: unknown model '", s.model(), "'"));
  }
  dataset::Manifest manifest;
  std::string error;
  if (!dataset::ParseManifest(checked.manifest_json(), s.data_dir(), &manifest, &error)) {
    return absl::FailedPreconditionError(absl::StrCat("spec.data_dir: ", error));
  }
  if (!manifest.has_split("train")) {
    return absl::FailedPreconditionError(
        absl::StrCat("spec.data_dir: ", s.data_dir(), " has no train split; build one first"));
  }
  // Class counts and models must agree with the checkpoints the trainer
  // would resume (train_dir) or start from (pretrained_model_checkpoint_path).
  if (checked.has_resumed()) {
    const v1::WeightsFacts& resumed = checked.resumed();
    if (resumed.model() != s.model() || resumed.num_classes() != manifest.num_classes) {
      return absl::FailedPreconditionError(
          absl::StrCat("spec.train_dir: ", s.train_dir(), " holds checkpoints of ", resumed.model(),
                       " with ", resumed.num_classes(), " classes (step ", resumed.step(),
                       "), which training would resume; this request is ", s.model(),
                       " on a dataset of ", manifest.num_classes, " classes: use a new train_dir"));
    }
  }
  if (checked.has_pretrained()) {
    RETURN_IF_ERROR(CheckPretrainedWeights(s, checked.pretrained(), manifest.num_classes));
  }
  v1::TrainTask task;
  *task.mutable_spec() = s;
  const trainer::InputMemoryOptions input = InputMemoryOf(s, *model);
  trainer::MemoryPlan plan;
  if (!trainer::PlanInputMemory(input, manifest, &plan, &error)) {
    return absl::FailedPreconditionError(absl::StrCat("spec.data_dir: ", error));
  }
  task.set_host_memory_bytes(plan.total_bytes * RanksPerWorker(s));
  if (s.num_gpus() > 0) {
    task.set_gpu_memory_bytes(GpuMemoryPerRank(s, *model, manifest.num_classes, input.image_size));
  }
  task.set_gpus(s.num_gpus());
  task.set_cpu_ranks(s.num_gpus() > 0 ? 1 : RanksPerWorker(s));
  task.set_nnodes(Workers(s));
  task.set_stop_grace_secs(kStopGraceSecs);
  return task;
}

// A training's check is done: the job fails with its refusal, or with what
// its findings show (the classes, the memory no worker has), or waits for
// the workers it needs with a train task for each.
void TrainAfterCheck(JobEngine& engine, v1::Job& job, const v1::CheckTrainingResult& checked) {
  if (EndIfRefused(engine, job, checked)) return;
  absl::StatusOr<v1::TrainTask> task = TrainTaskOf(job.training(), checked);
  absl::Status hostable = task.ok() ? engine.CheckSomeWorkerCouldHost(*task) : task.status();
  if (!hostable.ok()) {
    EndRefused(engine, job, RefusalOf(hostable));
    return;
  }
  job.set_request_checked(true);
  // One task per worker the job spans; they start together (PlaceGangs).
  std::vector<v1::Task> tasks;
  for (int node = 0; node < task->nnodes(); ++node) {
    v1::Task& t = tasks.emplace_back();
    *t.mutable_train() = *task;
    t.mutable_train()->set_node_rank(node);
  }
  engine.ReplaceTasks(job, std::move(tasks),
                      absl::StrCat("request checked: needs ", DescribeNeed(*task)));
}

// A training or evaluation job ends with the evaluation's figures.
void EndWithEvaluation(JobEngine& engine, v1::Job& job, const v1::TaskRecord& task) {
  const auto& e = task.result().eval().evaluation();
  if (job.type() == v1::JOB_TYPE_TRAINING) {
    *job.mutable_training_result()->mutable_evaluation() = e;
  } else {
    *job.mutable_evaluation_result() = e;
  }
  job.mutable_progress()->set_precision_at_1(e.precision_at_1());
  job.mutable_progress()->set_precision_at_5(e.precision_at_5());
  job.mutable_progress()->set_phase("done");
  engine.EndJob(
      job, v1::JOB_STATE_SUCCEEDED,
      absl::StrFormat("precision @ 1 = %.4f, @ 5 = %.4f on %d examples (%s)", e.precision_at_1(),
                      e.precision_at_5(), e.num_examples(), e.checkpoint()));
}

// What training and evaluation share: the trainer reports its own progress,
// and a task leased again resumes from the newest checkpoint.
class TrainerJob : public JobKind {
 public:
  bool ProgressFromTasks() const override { return false; }
  int64_t TaskUnits(const v1::Task&) const override { return 1; }
  std::string ProgressUnit(const v1::BuildPlan&) const override { return ""; }
  std::string RestartEvent(const std::string& where, int32_t attempt) const override {
    return absl::StrCat("restarted on ", where, " from the newest checkpoint (attempt ", attempt,
                        ")");
  }
  // The request's check is part of admission: the job stays QUEUED until
  // the trainer starts.
  bool LeaseStartsJob(const v1::Task& task) const override { return !task.has_check_training(); }
};

class Training : public TrainerJob {
 public:
  v1::JobType type() const override { return v1::JOB_TYPE_TRAINING; }
  std::string RunningPhase(const v1::BuildPlan&, const v1::Task* task) const override {
    if (task == nullptr) return "";
    if (task->has_check_training()) return kCheckingPhase;
    return task->has_train() ? "training" : "evaluating";
  }
  void TaskDone(JobEngine& engine, v1::Job& job, const v1::TaskRecord& task) const override {
    if (task.result().has_check_training()) {
      TrainAfterCheck(engine, job, task.result().check_training());
      return;
    }
    if (!task.result().has_train()) {
      EndWithEvaluation(engine, job, task);
      return;
    }
    if (!engine.AllTasksDone(job)) return;  // other workers' parts run on
    // Training ends with an evaluation of its final checkpoint.
    auto* r = job.mutable_training_result();
    r->set_restarts(task.attempts() - 1);
    // Node 0's result speaks for the job (its rank 0 wrote the checkpoint).
    for (const v1::TaskRecord* t : engine.TasksOf(job)) {
      if (t->task().train().node_rank() != 0) continue;
      r->set_steps(t->result().train().steps());
      r->set_final_checkpoint(t->result().train().final_checkpoint());
      r->set_final_loss(t->result().train().final_loss());
    }
    v1::Task eval;
    eval.mutable_eval()->mutable_spec()->set_data_dir(job.training().data_dir());
    eval.mutable_eval()->mutable_spec()->set_checkpoint_dir(job.training().train_dir());
    job.mutable_progress()->set_phase("evaluating");
    engine.ReplaceTasks(job, {std::move(eval)},
                        absl::StrCat("trained ", r->steps(), " steps (final loss ",
                                     absl::StrFormat("%.4f", r->final_loss()),
                                     "); evaluating the final checkpoint"));
  }
};

class Evaluation : public TrainerJob {
 public:
  v1::JobType type() const override { return v1::JOB_TYPE_EVALUATION; }
  std::string RunningPhase(const v1::BuildPlan&, const v1::Task* task) const override {
    return task != nullptr && task->has_check_training() ? kCheckingPhase : "evaluating";
  }
  void TaskDone(JobEngine& engine, v1::Job& job, const v1::TaskRecord& task) const override {
    if (!task.result().has_check_training()) {
      EndWithEvaluation(engine, job, task);
      return;
    }
    if (EndIfRefused(engine, job, task.result().check_training())) return;
    job.set_request_checked(true);
    v1::Task eval;
    *eval.mutable_eval()->mutable_spec() = job.evaluation();
    engine.ReplaceTasks(job, {std::move(eval)}, "request checked");
  }
};

}  // namespace

// "1.7 GiB", "340.0 MiB": the trainer's own formatting.
std::string GiB(int64_t bytes) { return trainer::HumanBytes(static_cast<double>(bytes)); }

int32_t ExamplesPerRank(const v1::TrainingSpec& spec) { return BatchSize(spec) / Ranks(spec); }

std::string DescribeNeed(const v1::TrainTask& t) {
  std::string need =
      t.gpus() > 0 ? absl::StrCat(t.gpus(), " GPU(s) with ", GiB(t.gpu_memory_bytes()), " each")
                   : absl::StrCat(t.cpu_ranks(), " CPU core(s)");
  return absl::StrCat(need, " and ", GiB(t.host_memory_bytes()), " of host memory on ",
                      t.nnodes() > 1 ? absl::StrCat("each of ", t.nnodes(), " workers")
                                     : std::string("one worker"));
}

// The worker's GPUs with at least `bytes` of memory (free now, or in all).
int32_t GpusWithMemory(const v1::WorkerResources& r, int64_t bytes, bool free_now) {
  int32_t n = 0;
  for (const auto& g : r.gpus()) {
    if ((free_now ? g.free_memory_bytes() : g.memory_bytes()) >= bytes) ++n;
  }
  return n;
}

bool WorkerCanHost(const v1::Worker& w, const v1::TrainTask& t, bool free_now) {
  const auto& r = w.resources();
  const int64_t memory =
      free_now && r.free_memory_bytes() > 0 ? r.free_memory_bytes() : r.memory_bytes();
  return r.cpu_cores() >= t.cpu_ranks() &&
         GpusWithMemory(r, t.gpu_memory_bytes(), free_now) >= t.gpus() &&
         (memory == 0 || memory >= t.host_memory_bytes());
}

namespace {

// The job's first task: a worker checks the request against its file
// system, with the coordinator's data roots.
v1::Task CheckTask(const DataRoots& roots) {
  v1::Task task;
  for (const auto& root : roots.roots()) task.mutable_check_training()->add_data_roots(root);
  return task;
}

}  // namespace

absl::StatusOr<PlannedJob> PlanTraining(const v1::SubmitTrainingRequest& req,
                                        const DataRoots& roots) {
  ASSIGN_OR_RETURN(v1::TrainingSpec spec, ValidateTrainingSpec(req.spec(), roots));
  PlannedJob planned;
  planned.job.set_type(v1::JOB_TYPE_TRAINING);
  *planned.job.mutable_training() = spec;
  v1::Task& check = planned.tasks.emplace_back(CheckTask(roots));
  *check.mutable_check_training()->mutable_training() = std::move(spec);
  planned.reason = absl::StrCat("training submitted: ", planned.job.training().model(),
                                "; a worker checks its dataset and checkpoints");
  return planned;
}

absl::StatusOr<PlannedJob> PlanEvaluation(const v1::SubmitEvaluationRequest& req,
                                          const DataRoots& roots) {
  v1::EvaluationSpec s = req.spec();
  ASSIGN_OR_RETURN(std::string data_dir, roots.Resolve("spec.data_dir", s.data_dir()));
  ASSIGN_OR_RETURN(std::string dir, roots.Resolve("spec.checkpoint_dir", s.checkpoint_dir()));
  s.set_data_dir(data_dir);
  s.set_checkpoint_dir(dir);
  if (!s.subset().empty() && s.subset() != "validation" && s.subset() != "train") {
    return absl::InvalidArgumentError("spec.subset: must be validation or train");
  }
  PlannedJob planned;
  planned.job.set_type(v1::JOB_TYPE_EVALUATION);
  *planned.job.mutable_evaluation() = s;
  v1::Task& check = planned.tasks.emplace_back(CheckTask(roots));
  *check.mutable_check_training()->mutable_evaluation() = std::move(s);
  planned.reason = "evaluation submitted; a worker checks its checkpoint";
  return planned;
}

const JobKind& TrainingKind() {
  static const Training kind;
  return kind;
}

const JobKind& EvaluationKind() {
  static const Evaluation kind;
  return kind;
}

}  // namespace retrain::server
