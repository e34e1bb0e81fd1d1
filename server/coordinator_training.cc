// Training and evaluation jobs: admission, placement, progress and logs,
// and the evaluation that ends every training job.
#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/job_states.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/coordinator.h"
#include "trainer/input/checkpoint_summary.h"
#include "trainer/input/input_pipeline.h"
#include "trainer/input/memory_plan.h"
#include "trainer/input/safetensors_index.h"
#include "trainer/spec/model_catalog.h"
#include "trainer/spec/training_knobs.h"
#include "trainer/trainer_error.h"

namespace retrain::server {

namespace v1 = retrain::v1;
namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;

namespace {

constexpr int kStopGraceSecs = 30;

// "1.7 GiB", "340.0 MiB": the trainer's own formatting.
std::string GiB(int64_t bytes) { return trainer::HumanBytes(static_cast<double>(bytes)); }

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

// A rendezvous port for a job's rank 0, drawn afresh for each placement in
// [29600, 49600): jobs of coordinators that share a host (whose job ids
// repeat: every state directory starts at j-000001) rarely meet on one port,
// and a placement that does fails to bind and is placed again.
int32_t RendezvousPort() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return 29600 + static_cast<int32_t>(rng() % 20000);
}

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
  const int64_t memory = free_now && r.free_memory_bytes() > 0 ? r.free_memory_bytes()
                                                               : r.memory_bytes();
  return r.cpu_cores() >= t.cpu_ranks() &&
         GpusWithMemory(r, t.gpu_memory_bytes(), free_now) >= t.gpus() &&
         (memory == 0 || memory >= t.host_memory_bytes());
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
  const int64_t step = static_cast<int64_t>(per_example * pixels) * (BatchSize(s) / Ranks(s));
  return state + step + trainer::kDeviceReserveBytes;
}

// The weights a run starts from must be those of spec.model and, unless
// spec.fine_tune starts the classifier fresh, have the dataset's classes:
// a retrain-trainer checkpoint (judged by its summary) or a safetensors
// file (by its header). The trainer checks every tensor again on load.
absl::Status CheckPretrainedWeights(const v1::TrainingSpec& s, int64_t dataset_classes) {
  const std::string& path = s.pretrained_model_checkpoint_path();
  std::string model;
  int64_t classes = 0;
  if (trainer::IsSafetensorsPath(path)) {
    trainer::SafetensorsIndex index;
    try {
      index = trainer::ReadSafetensorsIndex(path);
    } catch (const trainer::TrainerError& e) {
      return absl::FailedPreconditionError(
          absl::StrCat("spec.pretrained_model_checkpoint_path: ", e.what()));
    }
    const auto named = index.metadata.find(trainer::kSafetensorsModelKey);
    model = named != index.metadata.end() ? named->second : s.model();
    const auto fc = index.tensors.find("fc.weight");
    if (fc == index.tensors.end() || fc->second.shape.size() != 2) {
      return absl::FailedPreconditionError(absl::StrCat(
          "spec.pretrained_model_checkpoint_path: ", path,
          " has no classifier tensor fc.weight [classes, features]: not the weights of a "
          "model retrain trains (scripts/weights_to_safetensors.py writes them)"));
    }
    classes = fc->second.shape[0];
  } else {
    auto pre = trainer::ReadCheckpointSummary(path);
    if (!pre) {
      return absl::FailedPreconditionError(absl::StrCat(
          "spec.pretrained_model_checkpoint_path: ", path,
          " is not a retrain-trainer checkpoint (no ", trainer::CheckpointSummaryPath(""),
          " summary beside it) nor a .safetensors weights file"));
    }
    model = pre->model;
    classes = pre->num_classes;
  }
  if (model != s.model()) {
    return absl::FailedPreconditionError(
        absl::StrCat("spec.pretrained_model_checkpoint_path: the weights are ", model,
                     "'s and spec.model is ", s.model()));
  }
  if (classes != dataset_classes && !s.fine_tune()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "spec.fine_tune: the pretrained weights have ", classes, " classes and the dataset ",
        dataset_classes, "; set fine_tune so that the classifier layers start fresh"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::TrainTask> Coordinator::ValidateTrainingSpec(const v1::TrainingSpec& in) const {
  v1::TrainTask task;
  v1::TrainingSpec& s = *task.mutable_spec();
  s = in;
  ASSIGN_OR_RETURN(std::string data_dir, roots_.Resolve("spec.data_dir", in.data_dir()));
  ASSIGN_OR_RETURN(std::string train_dir, roots_.Resolve("spec.train_dir", in.train_dir()));
  s.set_data_dir(data_dir);
  s.set_train_dir(train_dir);
  if (s.model().empty()) s.set_model("inception_v3");
  const trainer::ModelInfo* model = trainer::FindModelInfo(s.model());
  if (model == nullptr) {
    std::string names;
    for (const auto& m : trainer::ModelCatalog()) absl::StrAppend(&names, names.empty() ? "" : ", ", m.name);
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
  if (s.num_workers() < 0) return absl::InvalidArgumentError("spec.num_workers: must not be negative");
  if (BatchSize(s) % Ranks(s) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.batch_size: ", BatchSize(s), " does not divide among ", Ranks(s),
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
  if (s.input_queue_memory_factor() < 0 || (s.has_num_preprocess_threads() && s.num_preprocess_threads() < 1)) {
    return absl::InvalidArgumentError(
        "spec.input_queue_memory_factor: must not be negative; spec.num_preprocess_threads: at "
        "least 1");
  }
  if (!s.pretrained_model_checkpoint_path().empty()) {
    ASSIGN_OR_RETURN(std::string p, roots_.Resolve("spec.pretrained_model_checkpoint_path",
                                                   s.pretrained_model_checkpoint_path()));
    s.set_pretrained_model_checkpoint_path(p);
  }
  // The dataset, and the host memory the trainer's input pipeline plans
  // for it (the trainer prints and checks the same plan).
  try {
    const trainer::DatasetManifest manifest = trainer::LoadDatasetManifest(data_dir);
    if (!manifest.has_split("train")) {
      return absl::FailedPreconditionError(
          absl::StrCat("spec.data_dir: ", data_dir, " has no train split; build one first"));
    }
    trainer::InputPipeline::Options p;
    p.data_dir = data_dir;
    p.batch_size = BatchSize(s) / Ranks(s);
    p.image_size = s.image_size() > 0 ? s.image_size() : model->default_image_size;
    // The trainer's defaults where the request leaves a field unset.
    if (s.has_num_preprocess_threads()) p.num_preprocess_threads = s.num_preprocess_threads();
    if (s.has_input_queue_memory_factor()) {
      p.input_queue_memory_factor = s.input_queue_memory_factor();
    }
    // Class counts and models must agree with the checkpoints the trainer
    // would resume (train_dir) or start from (pretrained_model_checkpoint_path).
    if (auto resumed = trainer::NewestCheckpointSummary(train_dir)) {
      if (resumed->model != s.model() || resumed->num_classes != manifest.num_classes) {
        return absl::FailedPreconditionError(absl::StrCat(
            "spec.train_dir: ", train_dir, " holds checkpoints of ", resumed->model, " with ",
            resumed->num_classes, " classes (step ", resumed->step, "), which training would "
            "resume; this request is ", s.model(), " on a dataset of ", manifest.num_classes,
            " classes: use a new train_dir"));
      }
    }
    if (!s.pretrained_model_checkpoint_path().empty()) {
      RETURN_IF_ERROR(CheckPretrainedWeights(s, manifest.num_classes));
    }
    const trainer::MemoryPlan plan = trainer::PlanInputMemory(p, manifest);
    task.set_host_memory_bytes(plan.total_bytes * RanksPerWorker(s));
    if (s.num_gpus() > 0) {
      task.set_gpu_memory_bytes(GpuMemoryPerRank(s, *model, manifest.num_classes, p.image_size));
    }
  } catch (const trainer::TrainerError& e) {
    return absl::FailedPreconditionError(absl::StrCat("spec.data_dir: ", e.what()));
  }
  task.set_gpus(s.num_gpus());
  task.set_cpu_ranks(s.num_gpus() > 0 ? 1 : RanksPerWorker(s));
  task.set_nnodes(Workers(s));
  task.set_stop_grace_secs(kStopGraceSecs);
  return task;
}

absl::Status Coordinator::CheckSomeWorkerCouldHost(const v1::TrainTask& task) const {
  // Judged against the workers known now; with none registered the job waits.
  bool any = false;
  int64_t largest_memory = 0, largest_gpu = 0;
  int32_t most_cores = 0, most_gpus = 0;
  for (const auto& [id, w] : workers_) {
    if (w.state() == v1::WORKER_STATE_LOST) continue;
    any = true;
    if (WorkerCanHost(w, task, /*free_now=*/false)) return absl::OkStatus();
    largest_memory = std::max(largest_memory, w.resources().memory_bytes());
    most_cores = std::max(most_cores, w.resources().cpu_cores());
    most_gpus = std::max(most_gpus, w.resources().gpus_size());
    for (const auto& g : w.resources().gpus())
      largest_gpu = std::max(largest_gpu, g.memory_bytes());
  }
  if (!any) return absl::OkStatus();
  if (task.gpus() > 0 && most_gpus >= task.gpus() && largest_gpu < task.gpu_memory_bytes()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the job needs ", DescribeNeed(task), " (", task.spec().model(), " at ",
        BatchSize(task.spec()) / Ranks(task.spec()), " examples per GPU); the largest GPU has ",
        GiB(largest_gpu),
        ": lower spec.batch_size, raise spec.num_gpus (the batch is split among them) or use "
        "spec.precision bf16"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the job needs ", DescribeNeed(task), "; the largest worker has ", most_cores,
      " cores, ", most_gpus, " GPU(s) and ", GiB(largest_memory),
      ": lower spec.input_queue_memory_factor or spec.batch_size (the shuffle buffer and "
      "batches take the memory) or spec.num_replicas / spec.num_gpus"));
}

absl::StatusOr<v1::Job> Coordinator::SubmitTraining(const v1::SubmitTrainingRequest& req,
                                                    const std::string& submitter) {
  ASSIGN_OR_RETURN(v1::TrainTask task, ValidateTrainingSpec(req.spec()));
  if (!req.validate_only()) {
    // The trainer writes there; a request that is only checked creates nothing.
    std::error_code ec;
    fs::create_directories(task.spec().train_dir(), ec);
    if (ec) {
      return absl::PermissionDeniedError(absl::StrCat(
          "spec.train_dir: cannot create ", task.spec().train_dir(), ": ", ec.message()));
    }
  }
  v1::Job job;
  job.set_type(v1::JOB_TYPE_TRAINING);
  job.set_submitter(submitter);
  job.set_priority(req.priority());
  *job.mutable_training() = task.spec();
  // One task per worker the job spans; they start together (PlaceGangs).
  std::vector<v1::Task> tasks;
  for (int node = 0; node < task.nnodes(); ++node) {
    v1::Task& t = tasks.emplace_back();
    *t.mutable_train() = task;
    t.mutable_train()->set_node_rank(node);
  }
  return AdmitJob(std::move(job), req.request_id(), req.validate_only(), std::move(tasks),
                  absl::StrCat("training submitted: ", task.spec().model(), ", needs ",
                               DescribeNeed(task)));
}

absl::StatusOr<v1::Job> Coordinator::SubmitEvaluation(const v1::SubmitEvaluationRequest& req,
                                                      const std::string& submitter) {
  v1::EvalTask task;
  v1::EvaluationSpec& s = *task.mutable_spec();
  s = req.spec();
  ASSIGN_OR_RETURN(std::string data_dir, roots_.Resolve("spec.data_dir", s.data_dir()));
  ASSIGN_OR_RETURN(std::string dir, roots_.Resolve("spec.checkpoint_dir", s.checkpoint_dir()));
  s.set_data_dir(data_dir);
  s.set_checkpoint_dir(dir);
  if (!s.subset().empty() && s.subset() != "validation" && s.subset() != "train") {
    return absl::InvalidArgumentError("spec.subset: must be validation or train");
  }
  if (!fs::exists(fs::path(dir) / "checkpoint")) {
    return absl::FailedPreconditionError(
        absl::StrCat("spec.checkpoint_dir: ", dir, " holds no checkpoint; train first"));
  }
  v1::Job job;
  job.set_type(v1::JOB_TYPE_EVALUATION);
  job.set_submitter(submitter);
  job.set_priority(req.priority());
  *job.mutable_evaluation() = s;
  std::vector<v1::Task> tasks(1);
  *tasks[0].mutable_eval() = task;
  return AdmitJob(std::move(job), req.request_id(), req.validate_only(), std::move(tasks),
                  "evaluation submitted");
}

absl::Status Coordinator::CheckPendingQuota(const std::string& submitter) const {
  int pending = 0;
  for (const auto& [id, entry] : jobs_) {
    pending += !IsFinalState(entry.job.state()) && entry.job.submitter() == submitter;
  }
  if (pending < options_.max_pending_jobs_per_client) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      submitter.empty() ? std::string("this client") : submitter, " has ", pending,
      " unfinished jobs (queued or running), the most the coordinator takes from one client "
      "(--max_pending_jobs_per_client): wait for some to end, or cancel some"));
}

absl::StatusOr<v1::Job> Coordinator::AdmitJob(v1::Job job, const std::string& request_id,
                                              bool validate_only, std::vector<v1::Task> tasks,
                                              const std::string& reason, v1::BuildPlan plan) {
  job.set_state(v1::JOB_STATE_QUEUED);
  job.set_request_id(request_id);
  *job.mutable_create_time() = TimeUtil::MillisecondsToTimestamp(Now());
  *job.mutable_update_time() = job.create_time();
  job.mutable_progress()->set_phase("queued");
  if (validate_only && job.has_dataset_build()) return job;
  std::lock_guard<std::mutex> lock(mu_);
  if (!tasks.empty() && tasks[0].has_train()) {
    RETURN_IF_ERROR(CheckSomeWorkerCouldHost(tasks[0].train()));
  }
  if (validate_only) return job;
  if (!request_id.empty()) {
    ASSIGN_OR_RETURN(const std::string existing_id, JobIdForRequest(request_id));
    if (!existing_id.empty()) {
      ASSIGN_OR_RETURN(const v1::Job existing, LookupJob(existing_id));
      using google::protobuf::util::MessageDifferencer;
      const bool same = MessageDifferencer::Equals(existing.dataset_build(), job.dataset_build()) &&
                        MessageDifferencer::Equals(existing.training(), job.training()) &&
                        MessageDifferencer::Equals(existing.evaluation(), job.evaluation()) &&
                        MessageDifferencer::Equals(existing.dataset_verify(), job.dataset_verify());
      if (!same) {
        return absl::AlreadyExistsError(absl::StrCat("request_id: '", request_id,
                                                     "' was used for job ", existing.id(),
                                                     " with a different request"));
      }
      return existing;
    }
  }
  RETURN_IF_ERROR(CheckPendingQuota(job.submitter()));
  job.set_id(NewJobId());
  if (!request_id.empty()) request_ids_[request_id] = job.id();
  JobEntry& entry = jobs_[job.id()];
  entry.job = std::move(job);
  entry.plan = std::move(plan);
  SetState(entry, v1::JOB_STATE_QUEUED, reason);
  StoreBatch batch;
  std::vector<v1::TaskRecord*> keep;
  AddTasks(entry, std::move(tasks), batch, keep);
  batch.jobs.push_back(&entry.job);
  if (entry.job.has_dataset_build()) {
    batch.plans.emplace_back(entry.job.id(), &entry.plan);
  }
  Persist(batch);
  if (entry.job.has_dataset_build()) EnqueuePlanner(entry.job.id());
  return entry.job;
}

bool Coordinator::CanLease(const v1::TaskRecord& t, const v1::Worker& w,
                           bool worker_is_reserved) const {
  // A worker placed for a part of a job over several workers waits for it.
  if (worker_is_reserved && t.reserved_worker_id() != w.id()) return false;
  if (!t.task().has_train()) return true;
  // The parts of a job over several workers go where PlaceGangs put them.
  if (t.task().train().nnodes() > 1) return t.reserved_worker_id() == w.id();
  // One trainer per worker at a time: it takes the worker's cores.
  for (const auto& [lease, task_id] : lease_to_task_) {
    if (tasks_.at(task_id).worker_id() == w.id()) return false;
  }
  return WorkerCanHost(w, t.task().train(), /*free_now=*/true);
}

void Coordinator::OnTrainingTaskDone(JobEntry& entry, const v1::TaskRecord& task) {
  if (task.result().has_train() && !PhaseComplete(entry)) return;  // other workers' parts run on
  if (task.result().has_train()) {
    // Training ends with an evaluation of its final checkpoint.
    auto* r = entry.job.mutable_training_result();
    r->set_steps(task.result().train().steps());
    r->set_final_checkpoint(task.result().train().final_checkpoint());
    r->set_final_loss(task.result().train().final_loss());
    r->set_restarts(task.attempts() - 1);
    v1::Task eval;
    eval.mutable_eval()->mutable_spec()->set_data_dir(entry.job.training().data_dir());
    eval.mutable_eval()->mutable_spec()->set_checkpoint_dir(entry.job.training().train_dir());
    entry.job.mutable_progress()->set_phase("evaluating");
    // Node 0's result speaks for the job (its rank 0 wrote the checkpoint).
    for (int64_t id : entry.task_ids) {
      const auto& t = tasks_.at(id);
      if (t.task().train().node_rank() != 0) continue;
      r->set_steps(t.result().train().steps());
      r->set_final_checkpoint(t.result().train().final_checkpoint());
      r->set_final_loss(t.result().train().final_loss());
    }
    StoreBatch batch;
    std::vector<v1::TaskRecord*> keep;
    for (int64_t id : entry.task_ids) {
      batch.drop_tasks.push_back(id);
      tasks_.erase(id);
    }
    AddTasks(entry, {std::move(eval)}, batch, keep);
    AddEvent(entry, absl::StrCat("trained ", r->steps(), " steps (final loss ",
                                 absl::StrFormat("%.4f", r->final_loss()),
                                 "); evaluating the final checkpoint"));
    batch.jobs.push_back(&entry.job);
    Persist(batch);
    return;
  }
  const auto& e = task.result().eval().evaluation();
  if (entry.job.type() == v1::JOB_TYPE_TRAINING) {
    *entry.job.mutable_training_result()->mutable_evaluation() = e;
  } else {
    *entry.job.mutable_evaluation_result() = e;
  }
  entry.job.mutable_progress()->set_precision_at_1(e.precision_at_1());
  entry.job.mutable_progress()->set_precision_at_5(e.precision_at_5());
  entry.job.mutable_progress()->set_phase("done");
  EndJob(entry, v1::JOB_STATE_SUCCEEDED,
         absl::StrFormat("precision @ 1 = %.4f, @ 5 = %.4f on %d examples (%s)",
                         e.precision_at_1(), e.precision_at_5(), e.num_examples(),
                         e.checkpoint()));
}

void Coordinator::PlaceGangs() {
  // Jobs over several workers, by priority then age: all parts placed on
  // free workers at once, or none.
  std::vector<JobEntry*> waiting;
  for (auto& [id, entry] : jobs_) {
    if (entry.job.state() == v1::JOB_STATE_QUEUED || entry.job.state() == v1::JOB_STATE_RUNNING) {
      if (entry.task_ids.size() > 1) waiting.push_back(&entry);
    }
  }
  std::sort(waiting.begin(), waiting.end(), [](const JobEntry* a, const JobEntry* b) {
    return std::make_pair(-a->job.priority(), a->job.id()) <
           std::make_pair(-b->job.priority(), b->job.id());
  });
  std::set<std::string> taken;
  for (const auto& [lease, task_id] : lease_to_task_) taken.insert(tasks_.at(task_id).worker_id());
  for (const auto& [id, t] : tasks_) {
    if (!t.reserved_worker_id().empty()) taken.insert(t.reserved_worker_id());
  }
  for (JobEntry* entry : waiting) {
    // A placement whose worker went away before taking its part is undone.
    bool stale = false;
    for (int64_t id : entry->task_ids) {
      const v1::TaskRecord& t = tasks_.at(id);
      if (t.state() != v1::TASK_STATE_PENDING || t.reserved_worker_id().empty()) continue;
      auto w = workers_.find(t.reserved_worker_id());
      stale = stale || w == workers_.end() || w->second.state() == v1::WORKER_STATE_LOST;
    }
    if (stale) {
      // Parts already running wait for a peer that will not come: every
      // part stops and the job is placed again.
      const v1::TaskRecord* cause = nullptr;
      for (int64_t id : entry->task_ids) {
        const v1::TaskRecord& t = tasks_.at(id);
        taken.erase(t.reserved_worker_id());
        if (t.state() == v1::TASK_STATE_PENDING && cause == nullptr) cause = &t;
      }
      RequeueGang(*entry, *cause, "a worker it was placed on went away before starting its part");
    }
    std::vector<v1::TaskRecord*> parts;
    bool all_pending = true;
    for (int64_t id : entry->task_ids) {
      v1::TaskRecord& t = tasks_.at(id);
      all_pending = all_pending && t.state() == v1::TASK_STATE_PENDING &&
                    t.reserved_worker_id().empty() && t.task().has_train();
      parts.push_back(&t);
    }
    if (!all_pending) continue;
    std::vector<const v1::Worker*> chosen;
    const int64_t now = Now();
    for (const auto& [wid, w] : workers_) {
      if (chosen.size() == parts.size()) break;
      if (w.state() == v1::WORKER_STATE_LOST || taken.count(wid)) continue;
      // Only workers heard from lately: a dead one is not LOST at once.
      if (now - TimeUtil::TimestampToMilliseconds(w.last_heartbeat()) >
          std::max(2 * options_.heartbeat_interval_ms, options_.lease_timeout_ms / 2)) {
        continue;
      }
      if (WorkerCanHost(w, parts[0]->task().train(), /*free_now=*/true)) chosen.push_back(&w);
    }
    if (chosen.size() < parts.size()) continue;
    const int32_t port = RendezvousPort();
    StoreBatch batch;
    for (v1::TaskRecord* t : parts) {
      const v1::Worker& w = *chosen[t->task().train().node_rank()];
      t->set_reserved_worker_id(w.id());
      t->mutable_task()->mutable_train()->set_master_addr(chosen[0]->hostname());
      t->mutable_task()->mutable_train()->set_master_port(port);
      taken.insert(w.id());
      batch.tasks.push_back(t);
    }
    AddEvent(*entry, absl::StrCat("placed on ", parts.size(), " workers; rank 0 on ",
                                  chosen[0]->id(), " (", chosen[0]->hostname(), ":", port, ")"));
    Persist(batch);
    task_available_.notify_all();
  }
}

void Coordinator::RequeueGang(JobEntry& entry, const v1::TaskRecord& cause, const std::string& why) {
  // The other parts cannot go on without this one: their leases end (their
  // workers stop the trainers) and the whole job is placed again.
  StoreBatch batch;
  for (int64_t id : entry.task_ids) {
    v1::TaskRecord& t = tasks_.at(id);
    t.set_reserved_worker_id("");
    batch.tasks.push_back(&t);
    if (id == cause.id() || t.state() == v1::TASK_STATE_PENDING) continue;
    if (t.state() == v1::TASK_STATE_LEASED) lease_to_task_.erase(t.lease_id());
    task_progress_.erase(id);
    t.clear_result();
    t.set_state(v1::TASK_STATE_PENDING);
    t.set_worker_id("");
    pending_.insert(id);
  }
  AddEvent(entry, absl::StrCat("every part of the job stops and is placed again: ", why));
  Persist(batch);
}

void Coordinator::UpdateQueuedReasons() {
  for (auto& [id, entry] : jobs_) {
    if (entry.job.state() != v1::JOB_STATE_QUEUED || entry.task_ids.empty()) continue;
    const v1::TaskRecord& t = tasks_.at(entry.task_ids.front());
    std::string reason;
    if (!t.reserved_worker_id().empty()) {
      reason = absl::StrCat("starting on ", entry.task_ids.size(), " workers");
    } else if (!t.task().has_train()) {
      reason = "queued: waiting for a free worker";
    } else {
      int live = 0, fitting = 0;
      for (const auto& [wid, w] : workers_) {
        if (w.state() == v1::WORKER_STATE_LOST) continue;
        ++live;
        fitting += WorkerCanHost(w, t.task().train(), /*free_now=*/false) ? 1 : 0;
      }
      const int needed = std::max(1, t.task().train().nnodes());
      reason = live == 0      ? "queued: no worker registered"
               : fitting < needed
                   ? absl::StrCat("queued: needs ", DescribeNeed(t.task().train()), "; ",
                                  fitting, " registered worker(s) have that")
                              : absl::StrCat("queued: needs ", DescribeNeed(t.task().train()),
                                             "; the ", fitting,
                                             " worker(s) that have it are busy");
    }
    if (entry.job.progress().phase() != reason) {
      entry.job.mutable_progress()->set_phase(reason);
      AddEvent(entry, reason);
    }
  }
}

void Coordinator::AppendJobLog(const std::string& job_id,
                               const google::protobuf::RepeatedPtrField<std::string>& lines) {
  if (lines.empty()) return;
  const fs::path dir = fs::path(options_.state_dir) / "logs";
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::ofstream out(dir / (job_id + ".log"), std::ios::app);
  for (const auto& l : lines) out << l << '\n';
}

absl::StatusOr<v1::GetJobLogsResponse> Coordinator::GetJobLogs(
    const v1::GetJobLogsRequest& req) const {
  if (req.offset() < 0) return absl::InvalidArgumentError("offset: must not be negative");
  bool ended = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(const v1::Job job, LookupJob(req.job_id()));
    ended = IsFinalState(job.state());
  }
  v1::GetJobLogsResponse resp;
  const int max_lines = req.max_lines() > 0 ? std::min(req.max_lines(), 10000) : 1000;
  std::ifstream in(fs::path(options_.state_dir) / "logs" / (req.job_id() + ".log"));
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    if (n++ < req.offset()) continue;
    if (resp.lines_size() == max_lines) {
      ended = false;  // more to read
      break;
    }
    resp.add_lines(line);
  }
  resp.set_next_offset(req.offset() + resp.lines_size());
  resp.set_job_ended(ended);
  return resp;
}

}  // namespace retrain::server
