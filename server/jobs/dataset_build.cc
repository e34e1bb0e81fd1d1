#include "server/jobs/dataset_build.h"

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "dataset/layout.h"
#include "server/build_planner.h"
#include "server/dataset_manifest.h"
#include "server/dataset_scan.h"

namespace retrain::server {

namespace v1 = retrain::v1;
namespace fs = std::filesystem;

namespace {

constexpr int kMaxShards = 99999;  // shard names have five digits
// Files one probe task validates.
constexpr int kFilesPerProbeTask = 64;

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

// Removes temporary files that workers killed mid-write left behind for
// this build's outputs (AtomicFileWriter names them ".<name>.tmp-<hex>").
void RemoveAbandonedTemporaries(const std::string& output, const std::set<std::string>& names) {
  for (const std::string& dir : {output, dataset::JoinPath(output, dataset::kIndexDirectory)}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      const auto tmp = name.find(".tmp-");
      if (name[0] != '.' || tmp == std::string::npos) continue;
      if (names.count(name.substr(1, tmp - 1))) fs::remove(e.path(), ec);
    }
  }
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

// Step 1, when the job is QUEUED: lists the files of each split (refusing
// what cannot be an image) and plans the probe tasks that validate them.
LockedStep ListFiles(const JobSnapshot& s) {
  const v1::DatasetBuildSpec& spec = s.job.dataset_build();
  std::vector<std::string> labels;
  for (const auto& l : s.plan.labels()) labels.push_back(l.name());
  std::vector<SplitScan> scans;
  absl::Status status;
  for (const auto& [split, dir] : {std::pair<std::string, std::string>{"train", spec.train_directory()},
                                   {"validation", spec.validation_directory()}}) {
    if (dir.empty()) continue;
    auto scan = ScanSplit(split, dir, labels, *s.roots);
    if (!scan.ok()) {
      status = scan.status();
      break;
    }
    scans.push_back(*std::move(scan));
  }
  std::error_code ec;
  if (status.ok()) {
    const std::string index = dataset::JoinPath(spec.output_directory(), dataset::kIndexDirectory);
    fs::create_directories(index, ec);
    if (ec) {
      status = absl::FailedPreconditionError(absl::StrCat(
          "output_directory: cannot create '", spec.output_directory(), "': ", ec.message()));
    }
  }
  return [status, scans = std::move(scans)](JobEngine& engine, v1::Job& job) {
    if (job.state() != v1::JOB_STATE_QUEUED) return;
    if (!status.ok()) {
      engine.EndJob(job, v1::JOB_STATE_FAILED, std::string(status.message()));
      return;
    }
    const v1::DatasetBuildSpec& spec = job.dataset_build();
    v1::BuildPlan& plan = engine.PlanOf(job);
    std::vector<v1::Task> tasks;
    int64_t files = 0;
    plan.clear_skipped();
    for (const auto& scan : scans) {
      for (auto& probe : MakeProbeTasks(scan, files, spec.max_pixels(), kFilesPerProbeTask)) {
        probe.set_cache_directory(ConversionCacheDirectory(spec.output_directory()));
        probe.set_jpeg_quality(spec.jpeg_quality());
        probe.set_num_threads(spec.num_threads());
        *tasks.emplace_back().mutable_probe() = std::move(probe);
      }
      files += static_cast<int64_t>(scan.files.size());
      for (const auto& refused : scan.skipped) *plan.add_skipped() = refused;
    }
    plan.set_phase(v1::BuildPlan::PHASE_PROBING);
    plan.set_files_listed(files);
    const std::string reason =
        absl::StrCat("listed ", files, " files (", plan.skipped_size(),
                     " refused); validating them in ", tasks.size(), " tasks");
    engine.SetRunning(job, std::move(tasks), reason);
  };
}

// Step 2, when every probe task is done: the good files, in listing order,
// shuffled into shard tasks; identical contents are noted.
LockedStep PlanShards(const JobSnapshot& s) {
  const v1::DatasetBuildSpec& spec = s.job.dataset_build();
  v1::BuildPlan plan = s.plan;
  // Good files per split in scan order (file_index), and identical contents.
  std::map<int64_t, std::pair<std::string, v1::ShardEntry>> good;
  std::map<std::string, std::vector<std::string>> by_hash;
  int64_t failed = 0;
  for (const auto& t : s.tasks) {
    const auto& probe = t.task().probe();
    std::map<int64_t, const v1::FileEntry*> files;
    for (const auto& f : probe.files()) files[f.file_index()] = &f;
    for (const auto& r : t.result().probe().files()) {
      auto fit = files.find(r.file_index());
      if (fit == files.end()) continue;
      const v1::FileEntry& f = *fit->second;
      if (!r.ok()) {
        auto* skipped = plan.add_skipped();
        skipped->set_path(EscapeNonUtf8(f.relative_path()));
        skipped->set_split(probe.split());
        skipped->set_reason(r.reason());
        skipped->set_detail(r.detail());
        ++failed;
        continue;
      }
      v1::ShardEntry e;
      e.set_relative_path(f.relative_path());
      e.set_label(plan.labels(f.label()).id());
      e.set_label_text(plan.labels(f.label()).name());
      e.set_content_hash(r.content_hash());
      e.set_cached_hash(r.cached_hash());
      by_hash[r.content_hash()].push_back(
          absl::StrCat(probe.split(), "/", EscapeNonUtf8(f.relative_path())));
      good[f.file_index()] = {probe.split(), std::move(e)};
    }
  }
  plan.clear_duplicates();
  for (auto& [hash, paths] : by_hash) {
    if (paths.size() < 2) continue;
    auto* d = plan.add_duplicates();
    for (auto& p : paths) d->add_paths(std::move(p));
  }
  std::vector<v1::Task> tasks;
  int64_t records = 0;
  for (const auto& [split, dir, shards] :
       {std::tuple<std::string, std::string, int>{"train", spec.train_directory(), spec.train_shards()},
        {"validation", spec.validation_directory(), spec.validation_shards()}}) {
    if (dir.empty()) continue;
    std::vector<v1::ShardEntry> entries;
    for (auto& [index, item] : good) {
      if (item.first == split) entries.push_back(std::move(item.second));
    }
    records += static_cast<int64_t>(entries.size());
    ShardPlanOptions o;
    o.split = split;
    o.directory = dir;
    o.output_directory = spec.output_directory();
    o.num_shards = shards;
    o.seed = spec.seed();
    o.jpeg_quality = spec.jpeg_quality();
    o.max_pixels = spec.max_pixels();
    o.num_threads = spec.num_threads();
    o.cache_directory = ConversionCacheDirectory(spec.output_directory());
    for (auto& shard : MakeShardTasks(std::move(entries), o)) {
      *tasks.emplace_back().mutable_shard() = std::move(shard);
    }
  }
  plan.set_phase(v1::BuildPlan::PHASE_WRITING);
  plan.set_records_planned(records);
  const std::string reason =
      absl::StrCat("validated ", plan.files_listed(), " files: ", records, " good, ", failed,
                   " skipped, ", plan.duplicates_size(), " sets of duplicates; writing ",
                   tasks.size(), " shards");
  return [plan = std::move(plan), tasks = std::move(tasks), reason](JobEngine& engine,
                                                                     v1::Job& job) mutable {
    if (job.state() != v1::JOB_STATE_RUNNING ||
        engine.PlanOf(job).phase() != v1::BuildPlan::PHASE_PROBING) {
      return;
    }
    engine.PlanOf(job) = std::move(plan);
    engine.ReplaceTasks(job, std::move(tasks), reason);
  };
}

// Step 3, when every shard task is done: the job says it is finalizing
// (a restart then finalizes again), and finalizes in a step of its own.
LockedStep MarkFinalizing(const JobSnapshot&) {
  return [](JobEngine& engine, v1::Job& job) {
    v1::BuildPlan& plan = engine.PlanOf(job);
    if (job.state() != v1::JOB_STATE_RUNNING || plan.phase() != v1::BuildPlan::PHASE_WRITING) {
      return;
    }
    plan.set_phase(v1::BuildPlan::PHASE_FINALIZING);
    engine.Save(job);
    engine.ScheduleStep(job);
  };
}

// Step 4: the shards are checked on disk (one missing or cut short is
// written again), the labels file and the manifest written, the job ended
// with the counts.
LockedStep Finalize(const JobSnapshot& s) {
  const auto& spec = s.job.dataset_build();
  v1::DatasetBuildResult result;
  result.set_output_directory(spec.output_directory());
  result.set_manifest(dataset::JoinPath(spec.output_directory(), dataset::kManifestFile));
  *result.mutable_labels() = s.plan.labels();
  *result.mutable_skipped() = s.plan.skipped();
  *result.mutable_duplicates() = s.plan.duplicates();
  std::map<std::string, std::map<int, int64_t>> counts;  // split -> label -> records
  std::vector<std::pair<int64_t, std::string>> missing;  // task id, its name
  for (const auto& t : s.tasks) {
    const auto& task = t.task().shard();
    const auto& r = t.result().shard();
    v1::SplitResult* split =
        task.split() == "train" ? result.mutable_train() : result.mutable_validation();
    *split->add_shards() = r.shard();
    split->set_num_records(split->num_records() + r.shard().num_records());
    split->set_num_converted(split->num_converted() + r.num_converted());
    std::set<std::string> skipped;
    for (const auto& file : r.skipped()) {
      skipped.insert(file.path());
      *result.add_skipped() = file;
    }
    for (const auto& e : task.entries()) {
      if (!skipped.count(EscapeNonUtf8(e.relative_path()))) ++counts[task.split()][e.label()];
    }
    struct stat st;
    const std::string path = spec.output_directory() + "/" + r.shard().file();
    if (::stat(path.c_str(), &st) != 0 || st.st_size != r.shard().num_bytes()) {
      missing.emplace_back(t.id(), TaskName(t));
    }
  }
  for (auto* split : {result.mutable_train(), result.mutable_validation()}) {
    const std::string name = split == result.mutable_train() ? "train" : "validation";
    for (const auto& l : s.plan.labels()) {
      auto* c = split->add_class_counts();
      c->set_label(l.id());
      c->set_name(l.name());
      c->set_count(counts[name][l.id()]);
    }
  }
  absl::Status status;
  if (missing.empty()) {
    std::set<std::string> names = {dataset::kLabelsFile, dataset::kManifestFile};
    for (const auto& t : s.tasks) {
      names.insert(t.task().shard().file_name());
      names.insert(fs::path(dataset::IndexFileFor(t.task().shard().file_name())).filename());
    }
    RemoveAbandonedTemporaries(spec.output_directory(), names);
    std::error_code ec;
    fs::remove_all(ConversionCacheDirectory(spec.output_directory()), ec);
    status = WriteFileAtomically(dataset::JoinPath(spec.output_directory(), dataset::kLabelsFile),
                                 LabelsText(result, spec.background_class()));
    if (status.ok()) {
      status = WriteFileAtomically(result.manifest(), DatasetManifestJson(s.job, result));
    }
  }
  return [missing, status, result](JobEngine& engine, v1::Job& job) {
    v1::BuildPlan& plan = engine.PlanOf(job);
    if (job.state() != v1::JOB_STATE_RUNNING ||
        plan.phase() != v1::BuildPlan::PHASE_FINALIZING) {
      return;
    }
    if (!missing.empty()) {
      // A shard that was reported written is gone (or cut short): write it again.
      plan.set_phase(v1::BuildPlan::PHASE_WRITING);
      engine.Save(job);
      for (const auto& [id, name] : missing) {
        engine.RedoTask(job, id, absl::StrCat(name, ": shard file missing or damaged; writing it again"));
      }
      return;
    }
    if (!status.ok()) {
      engine.EndJob(job, v1::JOB_STATE_FAILED,
                    absl::StrCat("cannot write the manifest: ", status.message()));
      return;
    }
    *job.mutable_dataset_build_result() = result;
    auto* p = job.mutable_progress();
    p->set_phase("done");
    p->set_eta_seconds(0);
    engine.EndJob(job, v1::JOB_STATE_SUCCEEDED,
                  absl::StrCat(result.train().num_records(), " train and ",
                               result.validation().num_records(), " validation records in ",
                               result.train().shards_size() + result.validation().shards_size(),
                               " shards; ", result.skipped_size(), " files skipped"));
  };
}

class DatasetBuild : public JobKind {
 public:
  v1::JobType type() const override { return v1::JOB_TYPE_DATASET_BUILD; }
  std::string RunningPhase(const v1::BuildPlan& plan, const v1::Task*) const override {
    switch (plan.phase()) {
      case v1::BuildPlan::PHASE_PROBING:
        return "validating";
      case v1::BuildPlan::PHASE_WRITING:
        return "writing shards";
      case v1::BuildPlan::PHASE_FINALIZING:
        return "finalizing";
      default:
        return "";
    }
  }
  int64_t TaskUnits(const v1::Task& task) const override {
    return task.has_probe() ? task.probe().files_size() : task.shard().entries_size();
  }
  int64_t TaskBytes(const v1::TaskResult& result) const override {
    return result.shard().shard().num_bytes();
  }
  int64_t TaskSkipped(const v1::TaskResult& result) const override {
    int64_t skipped = result.shard().skipped_size();
    for (const auto& f : result.probe().files()) skipped += f.ok() ? 0 : 1;
    return skipped;
  }
  void TaskDone(JobEngine& engine, v1::Job& job, const v1::TaskRecord&) const override {
    if (engine.AllTasksDone(job)) engine.ScheduleStep(job);
  }
  bool WantsStep(const v1::Job& job, const v1::BuildPlan& plan,
                 bool all_tasks_done) const override {
    return job.state() == v1::JOB_STATE_QUEUED ||
           (job.state() == v1::JOB_STATE_RUNNING &&
            (all_tasks_done || plan.phase() == v1::BuildPlan::PHASE_FINALIZING));
  }
  LockedStep RunStep(const JobSnapshot& s) const override {
    if (s.job.state() == v1::JOB_STATE_QUEUED) return ListFiles(s);
    if (s.plan.phase() == v1::BuildPlan::PHASE_FINALIZING) return Finalize(s);
    if (!AllDone(s)) return nullptr;
    if (s.plan.phase() == v1::BuildPlan::PHASE_PROBING) return PlanShards(s);
    if (s.plan.phase() == v1::BuildPlan::PHASE_WRITING) return MarkFinalizing(s);
    return nullptr;
  }
  void JobEnded(const v1::Job& job, v1::JobState state) const override {
    if (state == v1::JOB_STATE_SUCCEEDED) return;
    std::error_code ec;
    fs::remove_all(ConversionCacheDirectory(job.dataset_build().output_directory()), ec);
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
  *planned.job.mutable_dataset_build() = std::move(spec);
  planned.reason = absl::StrCat("dataset build submitted: ", planned.plan.labels_size(), " labels");
  return planned;
}

}  // namespace retrain::server
