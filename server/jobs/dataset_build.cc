#include "server/jobs/dataset_build.h"

#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/dataset_build.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "dataset/layout.h"
#include "server/dataset_scan.h"

namespace retrain::server {

namespace v1 = retrain::v1;
namespace fs = std::filesystem;

namespace {

using dataset::ShardFileName;

constexpr int kMaxShards = 99999;  // shard names have five digits
// Files one probe task validates at most (chunks of label directories'
// listings), and label directories one list task lists: few enough tasks
// that the coordinator's memory and the tasks' round trips stay small at
// millions of files, enough that workers share even a small build.
constexpr int kFilesPerProbeTask = 256;
constexpr int kLabelsPerListTask = 32;

absl::Status CheckDirectory(const std::string& field, const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(field, ": directory '", path, "' does not exist"));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": '", path, "' is not a directory"));
  }
  return absl::OkStatus();
}

absl::Status CheckShardCount(const std::string& field, int value) {
  if (value < 1 || value > kMaxShards) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be between 1 and ", kMaxShards, ", got ", value));
  }
  return absl::OkStatus();
}

// Shard files already in the output directory that this build would not
// overwrite: readers glob train-* / validation-*, so they would mix in.
absl::Status CheckOutputDirectory(const v1::DatasetBuildSpec& spec) {
  std::error_code ec;
  if (!fs::exists(spec.output_directory(), ec)) return absl::OkStatus();
  if (!fs::is_directory(spec.output_directory(), ec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output_directory: '", spec.output_directory(), "' exists and is not a directory"));
  }
  std::vector<std::string> foreign;
  for (const auto& e : fs::directory_iterator(spec.output_directory(), ec)) {
    const std::string name = e.path().filename().string();
    const bool train = name.rfind("train-", 0) == 0;
    const bool validation = name.rfind("validation-", 0) == 0;
    if (!train && !validation) continue;
    bool ours = false;
    if (train && !spec.train_directory().empty()) {
      for (int i = 0; i < spec.train_shards() && !ours; ++i) {
        ours = name == ShardFileName("train", i, spec.train_shards());
      }
    }
    if (validation && !spec.validation_directory().empty()) {
      for (int i = 0; i < spec.validation_shards() && !ours; ++i) {
        ours = name == ShardFileName("validation", i, spec.validation_shards());
      }
    }
    if (!ours) foreign.push_back(EscapeNonUtf8(name));
  }
  if (!foreign.empty()) {
    std::sort(foreign.begin(), foreign.end());
    if (foreign.size() > 3) foreign.resize(3), foreign.push_back("...");
    return absl::FailedPreconditionError(absl::StrCat(
        "output_directory: '", spec.output_directory(), "' already holds shards of another build (",
        absl::StrJoin(foreign, ", "),
        ") that readers would mix in; use an empty directory or remove them"));
  }
  return absl::OkStatus();
}

// The spec with its defaults filled in and its paths resolved, and the
// labels in `plan`.
absl::StatusOr<v1::DatasetBuildSpec> ValidateBuildSpec(const v1::DatasetBuildSpec& in,
                                                       const DataRoots& roots,
                                                       v1::BuildPlan* plan) {
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

  if (!in.train_directory().empty()) {
    ASSIGN_OR_RETURN(*spec.mutable_train_directory(),
                     roots.Resolve("train_directory", in.train_directory()));
    RETURN_IF_ERROR(CheckDirectory("train_directory", spec.train_directory()));
  }
  if (!in.validation_directory().empty()) {
    ASSIGN_OR_RETURN(*spec.mutable_validation_directory(),
                     roots.Resolve("validation_directory", in.validation_directory()));
    RETURN_IF_ERROR(CheckDirectory("validation_directory", spec.validation_directory()));
  }
  ASSIGN_OR_RETURN(*spec.mutable_output_directory(),
                   roots.Resolve("output_directory", in.output_directory()));
  if (spec.output_directory() == spec.train_directory() ||
      spec.output_directory() == spec.validation_directory()) {
    return absl::InvalidArgumentError(
        "output_directory: must differ from the train and validation directories");
  }
  RETURN_IF_ERROR(CheckOutputDirectory(spec));

  // Labels: the labels file in order, or the sorted label directories.
  const std::string& primary =
      spec.train_directory().empty() ? spec.validation_directory() : spec.train_directory();
  const char* primary_field =
      spec.train_directory().empty() ? "validation_directory" : "train_directory";
  std::vector<std::string> names;
  if (!in.labels_file().empty()) {
    ASSIGN_OR_RETURN(*spec.mutable_labels_file(), roots.Resolve("labels_file", in.labels_file()));
    auto content = ReadFile(spec.labels_file());
    if (!content.ok()) {
      return absl::Status(content.status().code() == absl::StatusCode::kNotFound
                              ? absl::StatusCode::kNotFound
                              : absl::StatusCode::kInvalidArgument,
                          absl::StrCat("labels_file: ", content.status().message()));
    }
    ASSIGN_OR_RETURN(std::vector<LabelLine> lines, ParseLabels(*content, spec.labels_file()));
    std::vector<std::string> missing;
    for (const auto& l : lines) {
      struct stat st;
      const std::string dir = primary + "/" + l.name;
      if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        missing.push_back(absl::StrCat("line ", l.line, " '", EscapeNonUtf8(l.name), "'"));
      }
      names.push_back(l.name);
    }
    if (!missing.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "labels_file ", spec.labels_file(), ": ", absl::StrJoin(missing, ", "),
          missing.size() == 1 ? " has" : " have", " no directory in ", primary_field, " ",
          primary, "; fix the name or create the directory"));
    }
  } else {
    auto listed = ListLabelDirectories(primary);
    if (!listed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(primary_field, ": ", listed.status().message()));
    }
    if (listed->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          primary_field, ": '", primary,
          "' has no label subdirectories; expected <dir>/<label>/<image files>"));
    }
    names = *std::move(listed);
  }
  const int first = spec.background_class() ? 1 : 0;
  plan->clear_labels();
  for (size_t i = 0; i < names.size(); ++i) {
    auto* l = plan->add_labels();
    l->set_id(first + static_cast<int>(i));
    l->set_name(names[i]);
  }
  return spec;
}

bool AllDone(const JobSnapshot& s) {
  for (const auto& t : s.tasks) {
    if (t.state() != v1::TASK_STATE_DONE) return false;
  }
  return true;
}

// The first phase: list tasks, each for up to kLabelsPerListTask label
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
      list.set_files_per_chunk(kFilesPerProbeTask);
    }
  }
  return tasks;
}

// The shard task writing shard `index` of `split`, whose good files number
// `records` (MakeShardTasks deals them: shard i holds records * (i + 1) / n -
// records * i / n of them).
v1::Task ShardTask(const v1::DatasetBuildSpec& spec, const BuildSplit& split, int index,
                   int64_t records) {
  v1::Task task;
  v1::ShardTask& shard = *task.mutable_shard();
  shard.set_directory(split.directory);
  shard.set_split(split.name);
  shard.set_output_directory(spec.output_directory());
  shard.set_file_name(ShardFileName(split.name, index, split.shards));
  shard.set_jpeg_quality(spec.jpeg_quality());
  shard.set_max_pixels(spec.max_pixels());
  shard.set_num_threads(spec.num_threads());
  shard.set_cache_directory(dataset::ConversionCacheDirectory(spec.output_directory()));
  shard.set_workspace(dataset::BuildWorkspaceDirectory(spec.output_directory()));
  shard.set_workspace_entries(records * (index + 1) / split.shards - records * index / split.shards);
  return task;
}

// Every list task is done: the listing goes into the plan, and probe tasks
// validate it, each a run of chunks of one split of at most
// kFilesPerProbeTask files.
LockedStep ValidateListing(const JobSnapshot& s) {
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
  std::vector<v1::Task> tasks;
  int task_files = kFilesPerProbeTask;  // of the last task; full: start another
  std::string task_split;
  for (const auto& listed : plan.listed()) {
    for (int64_t chunk = 0; chunk * kFilesPerProbeTask < listed.files(); ++chunk) {
      const int chunk_files = static_cast<int>(
          std::min<int64_t>(kFilesPerProbeTask, listed.files() - chunk * kFilesPerProbeTask));
      if (task_files + chunk_files > kFilesPerProbeTask || listed.split() != task_split) {
        v1::ProbeTask& probe = *tasks.emplace_back().mutable_probe();
        probe.set_directory(listed.split() == "train" ? spec.train_directory()
                                                      : spec.validation_directory());
        probe.set_split(listed.split());
        probe.set_max_pixels(spec.max_pixels());
        probe.set_cache_directory(dataset::ConversionCacheDirectory(spec.output_directory()));
        probe.set_jpeg_quality(spec.jpeg_quality());
        probe.set_num_threads(spec.num_threads());
        probe.set_workspace(dataset::BuildWorkspaceDirectory(spec.output_directory()));
        task_files = 0;
        task_split = listed.split();
      }
      v1::ListingChunk& c = *tasks.back().mutable_probe()->add_chunks();
      c.set_label_name(plan.labels(listed.label_index()).name());
      c.set_label(listed.label_index());
      c.set_chunk(static_cast<int32_t>(chunk));
      c.set_files(chunk_files);
      task_files += chunk_files;
    }
  }
  plan.set_phase(v1::BuildPlan::PHASE_PROBING);
  plan.set_files_listed(files);
  plan.set_num_skipped(refused);
  const std::string reason = absl::StrCat("listed ", files, " files (", refused,
                                          " refused); validating them in ", tasks.size(), " tasks");
  return [plan = std::move(plan), tasks = std::move(tasks), reason](JobEngine& engine,
                                                                     v1::Job& job) mutable {
    if (job.state() != v1::JOB_STATE_RUNNING ||
        engine.PlanOf(job).phase() != v1::BuildPlan::PHASE_LISTING) {
      return;
    }
    engine.PlanOf(job) = std::move(plan);
    engine.ReplaceTasks(job, std::move(tasks), reason);
  };
}

// Every probe task is done: one worker plans the shards from the workspace.
LockedStep PlanShards(const JobSnapshot& s) {
  int64_t failed = 0;
  for (const auto& t : s.tasks) failed += t.result().probe().num_skipped();
  v1::Task task;
  v1::PlanShardsTask& planning = *task.mutable_plan_shards();
  *planning.mutable_spec() = s.job.dataset_build();
  *planning.mutable_labels() = s.plan.labels();
  *planning.mutable_listed() = s.plan.listed();
  planning.set_workspace(dataset::BuildWorkspaceDirectory(s.job.dataset_build().output_directory()));
  planning.set_files_per_chunk(kFilesPerProbeTask);
  const std::string reason = absl::StrCat("validated ", s.plan.files_listed(), " files: ",
                                          s.plan.files_listed() - failed, " good, ", failed,
                                          " skipped; planning the shards");
  return [task = std::move(task), reason, failed](JobEngine& engine, v1::Job& job) mutable {
    v1::BuildPlan& plan = engine.PlanOf(job);
    if (job.state() != v1::JOB_STATE_RUNNING || plan.phase() != v1::BuildPlan::PHASE_PROBING) {
      return;
    }
    plan.set_phase(v1::BuildPlan::PHASE_PLANNING);
    plan.set_num_skipped(plan.num_skipped() + failed);
    std::vector<v1::Task> tasks;
    tasks.push_back(std::move(task));
    engine.ReplaceTasks(job, std::move(tasks), reason);
  };
}

// The shards are planned: shard tasks write them.
LockedStep WriteShards(const JobSnapshot& s) {
  const v1::DatasetBuildSpec& spec = s.job.dataset_build();
  v1::BuildPlan plan = s.plan;
  const v1::PlanShardsResult& planned = s.tasks.front().result().plan_shards();
  int64_t refused = 0;  // while listing
  for (const auto& l : plan.listed()) refused += l.refused();
  plan.set_phase(v1::BuildPlan::PHASE_WRITING);
  plan.set_records_planned(planned.train_records() + planned.validation_records());
  plan.set_num_skipped(planned.num_skipped());
  plan.set_num_duplicate_groups(planned.num_duplicate_groups());
  *plan.mutable_skipped() = planned.first_skipped();
  *plan.mutable_duplicates() = planned.first_duplicates();
  std::vector<v1::Task> tasks;
  for (const auto& split : BuildSplits(spec)) {
    const int64_t records =
        split.name == "train" ? planned.train_records() : planned.validation_records();
    for (int i = 0; i < split.shards; ++i) tasks.push_back(ShardTask(spec, split, i, records));
  }
  const std::string reason =
      absl::StrCat("validated ", plan.files_listed(), " files: ", plan.records_planned(),
                   " good, ", planned.num_skipped() - refused, " skipped, ",
                   planned.num_duplicate_groups(), " sets of duplicates; writing ", tasks.size(),
                   " shards");
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
  *known.mutable_duplicates() = s.plan.duplicates();
  known.set_num_skipped(s.plan.num_skipped());
  known.set_num_duplicate_groups(s.plan.num_duplicate_groups());
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
      const std::string file = ShardFileName(split.name, i, split.shards);
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

class DatasetBuild : public JobKind {
 public:
  v1::JobType type() const override { return v1::JOB_TYPE_DATASET_BUILD; }
  std::string RunningPhase(const v1::BuildPlan& plan, const v1::Task*) const override {
    switch (plan.phase()) {
      case v1::BuildPlan::PHASE_LISTING:
        return "listing";
      case v1::BuildPlan::PHASE_PROBING:
        return "validating";
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
      case v1::BuildPlan::PHASE_PROBING:
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
      case v1::Task::kProbe:
        return ProbeTaskFiles(task.probe());
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
    int64_t skipped = result.shard().skipped_size() + result.probe().num_skipped();
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
      case v1::BuildPlan::PHASE_LISTING:
        return ValidateListing(s);
      case v1::BuildPlan::PHASE_PROBING:
        return PlanShards(s);
      case v1::BuildPlan::PHASE_PLANNING:
        return WriteShards(s);
      case v1::BuildPlan::PHASE_WRITING:
        return FinalizeOnAWorker(s);
      case v1::BuildPlan::PHASE_FINALIZING:
        return EndWithTheResult(s);
      default:
        return nullptr;
    }
  }
  void JobEnded(const v1::Job& job, v1::JobState state) const override {
    if (state == v1::JOB_STATE_SUCCEEDED) return;
    // Where the coordinator sees the output directory, it tidies up after a
    // failed or cancelled build; elsewhere the next build there overwrites.
    std::error_code ec;
    fs::remove_all(dataset::ConversionCacheDirectory(job.dataset_build().output_directory()), ec);
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
  // File-system checks: the engine calls this without its lock.
  ASSIGN_OR_RETURN(v1::DatasetBuildSpec spec, ValidateBuildSpec(request, roots, &planned.plan));
  planned.job.set_type(v1::JOB_TYPE_DATASET_BUILD);
  planned.plan.set_phase(v1::BuildPlan::PHASE_LISTING);
  planned.tasks = ListTasks(spec, planned.plan, roots);
  *planned.job.mutable_dataset_build() = std::move(spec);
  planned.reason = absl::StrCat("dataset build submitted: ", planned.plan.labels_size(), " labels");
  return planned;
}

}  // namespace retrain::server
