#include "server/jobs/dataset_build.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/dataset_build.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "dataset/layout.h"

namespace retrain::server {

namespace v1 = retrain::v1;
namespace fs = std::filesystem;

namespace {

using dataset::ShardFileName;

constexpr int kMaxShards = 99999;  // shard names have five digits
// Label directories one list task lists: few enough tasks that the
// coordinator's memory and the tasks' round trips stay small at millions of
// files, enough that workers share the listing of a large build. A
// listing's chunks in the workspace hold kFilesPerListChunk names each.
constexpr int kLabelsPerListTask = 32;
constexpr int kFilesPerListChunk = 256;

absl::Status CheckShardCount(const std::string& field, int value) {
  if (value < 1 || value > kMaxShards) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be between 1 and ", kMaxShards, ", got ", value));
  }
  return absl::OkStatus();
}

// The spec with its defaults filled in and its paths lexically normal
// under the data roots.
absl::StatusOr<v1::DatasetBuildSpec> ValidateBuildSpec(const v1::DatasetBuildSpec& in,
                                                       const DataRoots& roots) {
  v1::DatasetBuildSpec spec = in;
  if (in.train_directory().empty() && in.validation_directory().empty()) {
    return absl::InvalidArgumentError(
        "train_directory, validation_directory: give at least one of them");
  }
  if (in.output_directory().empty()) {
    return absl::InvalidArgumentError("output_directory is required");
  }
  if (!in.has_train_shards()) spec.set_train_shards(2);
  if (!in.has_validation_shards()) spec.set_validation_shards(2);
  RETURN_IF_ERROR(CheckShardCount("train_shards", spec.train_shards()));
  RETURN_IF_ERROR(CheckShardCount("validation_shards", spec.validation_shards()));
  if (in.has_num_threads() && (in.num_threads() < 1 || in.num_threads() > 256)) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_threads: must be between 1 and 256, got ", in.num_threads()));
  }
  if (!in.has_background_class()) spec.set_background_class(true);
  if (!in.has_jpeg_quality()) spec.set_jpeg_quality(95);
  if (spec.jpeg_quality() < 1 || spec.jpeg_quality() > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("jpeg_quality: must be between 1 and 100, got ", spec.jpeg_quality()));
  }
  if (!in.has_max_pixels()) spec.set_max_pixels(100'000'000);
  if (spec.max_pixels() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_pixels: must be positive, got ", spec.max_pixels()));
  }
  if (!in.has_seed()) spec.set_seed(12345);
  dataset::ShardFormat format = dataset::ShardFormat::kTfRecord;
  if (in.format().empty()) spec.set_format(dataset::ShardFormatName(format));
  if (!dataset::ParseShardFormat(spec.format(), &format)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "format: must be one of ", dataset::ShardFormatNames(), ", got '", spec.format(), "'"));
  }
  dataset::VerifyMode verify = dataset::VerifyMode::kFull;
  if (in.verify().empty()) spec.set_verify(dataset::VerifyModeName(verify));
  if (!dataset::ParseVerifyMode(spec.verify(), &verify)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "verify: must be one of ", dataset::VerifyModeNames(), ", got '", spec.verify(), "'"));
  }

  // Paths by their spelling: the check task confines them again on a
  // worker's file system and reads the labels.
  struct Path {
    const char* field;
    std::string* path;
  };
  for (const Path& p : {Path{"train_directory", spec.mutable_train_directory()},
                        Path{"validation_directory", spec.mutable_validation_directory()},
                        Path{"output_directory", spec.mutable_output_directory()},
                        Path{"labels_file", spec.mutable_labels_file()}}) {
    if (!p.path->empty()) {
      ASSIGN_OR_RETURN(*p.path, roots.Resolve(p.field, *p.path));
    }
  }
  if (spec.output_directory() == spec.train_directory() ||
      spec.output_directory() == spec.validation_directory()) {
    return absl::InvalidArgumentError(
        "output_directory: must differ from the train and validation directories");
  }
  return spec;
}

bool AllDone(const JobSnapshot& s) {
  for (const auto& t : s.tasks) {
    if (t.state() != v1::TASK_STATE_DONE) return false;
  }
  return true;
}

// The listing phase: list tasks, each for up to kLabelsPerListTask label
// directories of a split.
std::vector<v1::Task> ListTasks(const v1::DatasetBuildSpec& spec, const v1::BuildPlan& plan,
                                const DataRoots& roots) {
  std::vector<v1::Task> tasks;
  for (const auto& split : BuildSplits(spec)) {
    for (int first = 0; first < plan.labels_size(); first += kLabelsPerListTask) {
      v1::ListTask& list = *tasks.emplace_back().mutable_list();
      list.set_directory(split.directory);
      list.set_split(split.name);
      list.set_first_label_index(first);
      for (int i = first; i < std::min(plan.labels_size(), first + kLabelsPerListTask); ++i) {
        list.add_labels(plan.labels(i).name());
      }
      for (const auto& root : roots.roots()) list.add_data_roots(root);
      list.set_workspace(dataset::BuildWorkspaceDirectory(spec.output_directory()));
      list.set_files_per_chunk(kFilesPerListChunk);
    }
  }
  return tasks;
}

// The check task is done: the job fails with its refusal, or its labels
// go into the plan and list tasks list their directories.
LockedStep StartListing(const JobSnapshot& s) {
  const v1::CheckBuildResult& checked = s.tasks.front().result().check_build();
  v1::BuildPlan plan = s.plan;
  std::vector<v1::Task> tasks;
  std::string reason;
  if (!checked.has_refusal()) {
    const int first = s.job.dataset_build().background_class() ? 1 : 0;
    plan.clear_labels();
    for (int i = 0; i < checked.labels_size(); ++i) {
      v1::LabelInfo& l = *plan.add_labels();
      l.set_id(first + i);
      l.set_name(checked.labels(i));
    }
    plan.set_phase(v1::BuildPlan::PHASE_LISTING);
    tasks = ListTasks(s.job.dataset_build(), plan, *s.roots);
    reason = absl::StrCat("request checked: ", plan.labels_size(), " labels; listing their files");
  }
  return [plan = std::move(plan), tasks = std::move(tasks), reason, refusal = checked.refusal()](
             JobEngine& engine, v1::Job& job) mutable {
    if (job.state() != v1::JOB_STATE_RUNNING ||
        engine.PlanOf(job).phase() != v1::BuildPlan::PHASE_CHECKING) {
      return;
    }
    if (!refusal.message().empty()) {
      EndRefused(engine, job, refusal);
      return;
    }
    job.set_request_checked(true);
    engine.PlanOf(job) = std::move(plan);
    engine.ReplaceTasks(job, std::move(tasks), reason);
  };
}

// The shard task writing shard `index` of `split`, whose `files` the
// planning task dealt into its n shards (MakeShardTasks: shard i gets
// files * (i + 1) / n - files * i / n of them).
v1::Task ShardTask(const v1::DatasetBuildSpec& spec, const BuildSplit& split, int index,
                   int64_t files) {
  v1::Task task;
  v1::ShardTask& shard = *task.mutable_shard();
  shard.set_directory(split.directory);
  shard.set_split(split.name);
  shard.set_output_directory(spec.output_directory());
  shard.set_file_name(split.ShardFile(index));
  shard.set_format(dataset::ShardFormatName(split.format));
  shard.set_jpeg_quality(spec.jpeg_quality());
  shard.set_max_pixels(spec.max_pixels());
  shard.set_verify(spec.verify());
  shard.set_num_threads(spec.num_threads());
  shard.set_workspace(dataset::BuildWorkspaceDirectory(spec.output_directory()));
  shard.set_workspace_entries(files * (index + 1) / split.shards - files * index / split.shards);
  return task;
}

// Every list task is done: the listing goes into the plan, and one worker
// deals it into shards in the workspace.
LockedStep PlanShards(const JobSnapshot& s) {
  const v1::DatasetBuildSpec& spec = s.job.dataset_build();
  v1::BuildPlan plan = s.plan;
  plan.clear_listed();
  int64_t files = 0, refused = 0;
  for (const auto& t : s.tasks) {
    for (const auto& listed : t.result().list().listed()) {
      *plan.add_listed() = listed;
      files += listed.files();
      refused += listed.refused();
    }
  }
  plan.set_phase(v1::BuildPlan::PHASE_PLANNING);
  plan.set_files_listed(files);
  plan.set_num_skipped(refused);
  v1::Task task;
  v1::PlanShardsTask& planning = *task.mutable_plan_shards();
  *planning.mutable_spec() = spec;
  *planning.mutable_labels() = plan.labels();
  *planning.mutable_listed() = plan.listed();
  planning.set_workspace(dataset::BuildWorkspaceDirectory(spec.output_directory()));
  planning.set_files_per_chunk(kFilesPerListChunk);
  const std::string reason =
      absl::StrCat("listed ", files, " files (", refused, " refused); planning the shards");
  return [plan = std::move(plan), task = std::move(task), reason](JobEngine& engine,
                                                                  v1::Job& job) mutable {
    if (job.state() != v1::JOB_STATE_RUNNING ||
        engine.PlanOf(job).phase() != v1::BuildPlan::PHASE_LISTING) {
      return;
    }
    engine.PlanOf(job) = std::move(plan);
    std::vector<v1::Task> tasks;
    tasks.push_back(std::move(task));
    engine.ReplaceTasks(job, std::move(tasks), reason);
  };
}

// The shards are planned: shard tasks validate their files and write them,
// the largest first (workers lease in task order), so that the last ones
// leased are the smallest and the workers finish nearly together.
LockedStep WriteShards(const JobSnapshot& s) {
  const v1::DatasetBuildSpec& spec = s.job.dataset_build();
  v1::BuildPlan plan = s.plan;
  const v1::PlanShardsResult& planned = s.tasks.front().result().plan_shards();
  plan.set_phase(v1::BuildPlan::PHASE_WRITING);
  plan.set_records_planned(planned.train_records() + planned.validation_records());
  plan.set_num_skipped(planned.num_skipped());
  *plan.mutable_skipped() = planned.first_skipped();
  std::vector<v1::Task> tasks;
  for (const auto& split : BuildSplits(spec)) {
    const int64_t files =
        split.name == "train" ? planned.train_records() : planned.validation_records();
    for (int i = 0; i < split.shards; ++i) tasks.push_back(ShardTask(spec, split, i, files));
  }
  std::stable_sort(tasks.begin(), tasks.end(), [](const v1::Task& a, const v1::Task& b) {
    return a.shard().workspace_entries() > b.shard().workspace_entries();
  });
  const std::string reason = absl::StrCat("planned ", plan.records_planned(), " files into ",
                                          tasks.size(), " shards; validating and writing them");
  return [plan = std::move(plan), tasks = std::move(tasks), reason](JobEngine& engine,
                                                                     v1::Job& job) mutable {
    if (job.state() != v1::JOB_STATE_RUNNING ||
        engine.PlanOf(job).phase() != v1::BuildPlan::PHASE_PLANNING) {
      return;
    }
    engine.PlanOf(job) = std::move(plan);
    engine.ReplaceTasks(job, std::move(tasks), reason);
  };
}

// Every shard is written: a worker checks them and writes the manifest.
LockedStep FinalizeOnAWorker(const JobSnapshot& s) {
  v1::Task task;
  v1::FinalizeBuildTask& finalize = *task.mutable_finalize_build();
  *finalize.mutable_job() = s.job;
  v1::DatasetBuildResult& known = *finalize.mutable_job()->mutable_dataset_build_result();
  *known.mutable_labels() = s.plan.labels();
  *known.mutable_skipped() = s.plan.skipped();
  known.set_num_skipped(s.plan.num_skipped());
  finalize.set_workspace(dataset::BuildWorkspaceDirectory(s.job.dataset_build().output_directory()));
  return [task = std::move(task)](JobEngine& engine, v1::Job& job) mutable {
    v1::BuildPlan& plan = engine.PlanOf(job);
    if (job.state() != v1::JOB_STATE_RUNNING || plan.phase() != v1::BuildPlan::PHASE_WRITING) {
      return;
    }
    plan.set_phase(v1::BuildPlan::PHASE_FINALIZING);
    std::vector<v1::Task> tasks;
    tasks.push_back(std::move(task));
    engine.ReplaceTasks(job, std::move(tasks), "every shard written; writing the manifest");
  };
}

// The finalize task is done: the job ends with its result, or the shards it
// found missing are written again.
LockedStep EndWithTheResult(const JobSnapshot& s) {
  const v1::DatasetBuildSpec& spec = s.job.dataset_build();
  const v1::FinalizeBuildResult& finalized = s.tasks.front().result().finalize_build();
  std::vector<v1::Task> rewrites;
  for (const auto& split : BuildSplits(spec)) {
    for (int i = 0; i < split.shards; ++i) {
      const std::string file = split.ShardFile(i);
      for (const auto& missing : finalized.missing_shards()) {
        if (missing == file) rewrites.push_back(ShardTask(spec, split, i, 0));
      }
    }
  }
  const std::string missing = absl::StrJoin(finalized.missing_shards(), ", ");
  return [rewrites = std::move(rewrites), result = finalized.result(), missing](
             JobEngine& engine, v1::Job& job) mutable {
    v1::BuildPlan& plan = engine.PlanOf(job);
    if (job.state() != v1::JOB_STATE_RUNNING ||
        plan.phase() != v1::BuildPlan::PHASE_FINALIZING) {
      return;
    }
    if (!rewrites.empty()) {
      // A shard reported written is gone (or cut short): write it again.
      plan.set_phase(v1::BuildPlan::PHASE_WRITING);
      engine.ReplaceTasks(job, std::move(rewrites),
                          absl::StrCat(missing, ": shard file missing or damaged; writing it again"));
      return;
    }
    *job.mutable_dataset_build_result() = std::move(result);
    const v1::DatasetBuildResult& r = job.dataset_build_result();
    auto* p = job.mutable_progress();
    p->set_phase("done");
    p->set_eta_seconds(0);
    engine.EndJob(job, v1::JOB_STATE_SUCCEEDED,
                  absl::StrCat(r.train().num_records(), " train and ",
                               r.validation().num_records(), " validation records in ",
                               r.train().shards_size() + r.validation().shards_size(),
                               " shards; ", r.num_skipped(), " files skipped"));
  };
}

// A plan in a phase this coordinator does not have (another version's,
// from the database): the job fails rather than waiting for ever.
LockedStep FailInAnUnknownPhase(const JobSnapshot& s) {
  const int phase = s.plan.phase();
  return [phase](JobEngine& engine, v1::Job& job) {
    if (job.state() != v1::JOB_STATE_RUNNING || engine.PlanOf(job).phase() != phase) return;
    engine.EndJob(job, v1::JOB_STATE_FAILED,
                  absl::StrCat("the build's plan is in phase ", phase,
                               ", which this coordinator does not know (another version planned "
                               "it); build the dataset again"));
  };
}

class DatasetBuild : public JobKind {
 public:
  v1::JobType type() const override { return v1::JOB_TYPE_DATASET_BUILD; }
  std::string RunningPhase(const v1::BuildPlan& plan, const v1::Task*) const override {
    switch (plan.phase()) {
      case v1::BuildPlan::PHASE_CHECKING:
        return kCheckingPhase;
      case v1::BuildPlan::PHASE_LISTING:
        return "listing";
      case v1::BuildPlan::PHASE_PLANNING:
        return "planning shards";
      case v1::BuildPlan::PHASE_WRITING:
        return "writing shards";
      case v1::BuildPlan::PHASE_FINALIZING:
        return "finalizing";
      default:
        return "";
    }
  }
  std::string ProgressUnit(const v1::BuildPlan& plan) const override {
    switch (plan.phase()) {
      case v1::BuildPlan::PHASE_LISTING:
        return "directories";
      case v1::BuildPlan::PHASE_WRITING:
        return "files";
      default:
        return "tasks";
    }
  }
  // Label directories listed, files validated and written; one for the
  // planning and finalizing tasks.
  int64_t TaskUnits(const v1::Task& task) const override {
    switch (task.kind_case()) {
      case v1::Task::kShard:
        return task.shard().workspace_entries();
      case v1::Task::kList:
        return task.list().labels_size();
      default:
        return 1;
    }
  }
  int64_t TaskBytes(const v1::TaskResult& result) const override {
    return result.shard().shard().num_bytes();
  }
  int64_t TaskSkipped(const v1::TaskResult& result) const override {
    int64_t skipped = result.shard().skipped_size();
    for (const auto& l : result.list().listed()) skipped += l.refused();
    return skipped;
  }
  int64_t TaskFound(const v1::TaskResult& result) const override {
    int64_t found = 0;
    for (const auto& l : result.list().listed()) found += l.files();
    return found;
  }
  void TaskDone(JobEngine& engine, v1::Job& job, const v1::TaskRecord&) const override {
    if (engine.AllTasksDone(job)) engine.ScheduleStep(job);
  }
  bool WantsStep(const v1::Job& job, const v1::BuildPlan& plan,
                 bool all_tasks_done) const override {
    return job.state() == v1::JOB_STATE_RUNNING && all_tasks_done;
  }
  LockedStep RunStep(const JobSnapshot& s) const override {
    if (s.job.state() != v1::JOB_STATE_RUNNING || !AllDone(s)) return nullptr;
    switch (s.plan.phase()) {
      case v1::BuildPlan::PHASE_CHECKING:
        return StartListing(s);
      case v1::BuildPlan::PHASE_LISTING:
        return PlanShards(s);
      case v1::BuildPlan::PHASE_PLANNING:
        return WriteShards(s);
      case v1::BuildPlan::PHASE_WRITING:
        return FinalizeOnAWorker(s);
      case v1::BuildPlan::PHASE_FINALIZING:
        return EndWithTheResult(s);
      default:
        return FailInAnUnknownPhase(s);
    }
  }
  void JobEnded(const v1::Job& job, v1::JobState state) const override {
    if (state == v1::JOB_STATE_SUCCEEDED) return;
    // Where the coordinator sees the output directory, it tidies up after a
    // failed or cancelled build; elsewhere the next build there overwrites.
    std::error_code ec;
    fs::remove_all(dataset::BuildWorkspaceDirectory(job.dataset_build().output_directory()), ec);
  }
};

}  // namespace

const JobKind& DatasetBuildKind() {
  static const DatasetBuild kind;
  return kind;
}

absl::StatusOr<PlannedJob> PlanDatasetBuild(const v1::DatasetBuildSpec& request,
                                            const DataRoots& roots) {
  PlannedJob planned;
  ASSIGN_OR_RETURN(v1::DatasetBuildSpec spec, ValidateBuildSpec(request, roots));
  planned.job.set_type(v1::JOB_TYPE_DATASET_BUILD);
  planned.plan.set_phase(v1::BuildPlan::PHASE_CHECKING);
  v1::CheckBuildTask& check = *planned.tasks.emplace_back().mutable_check_build();
  *check.mutable_spec() = spec;
  for (const auto& root : roots.roots()) check.add_data_roots(root);
  *planned.job.mutable_dataset_build() = std::move(spec);
  planned.reason = "dataset build submitted; a worker checks its paths and reads its labels";
  return planned;
}

}  // namespace retrain::server
