#include "worker/build/plan_task.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dataset_build.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "dataset/layout.h"
#include "dataset/manifest.h"
#include "worker/build/dataset_manifest.h"
#include "worker/build/shard_plan.h"
#include "worker/build/workspace.h"

namespace retrain::worker {

namespace v1 = retrain::v1;

namespace {

// The files refused while listing: skipped.jsonl in the workspace, and the
// first of them in the result.
class RefusedList {
 public:
  explicit RefusedList(const std::string& workspace)
      : file_(dataset::JoinPath(workspace, dataset::kSkippedFile)) {}

  absl::Status Open() { return file_.Open(); }
  absl::Status Add(v1::SkippedFile file, v1::PlanShardsResult* result) {
    RETURN_IF_ERROR(file_.Append(dataset::SkippedLine(
        {file.path(), file.split(), SkipReasonName(file.reason()), file.detail()})));
    result->set_num_skipped(result->num_skipped() + 1);
    if (result->first_skipped_size() < dataset::kManifestListLimit) {
      *result->add_first_skipped() = std::move(file);
    }
    return absl::OkStatus();
  }
  absl::Status Commit() { return file_.Commit(AtomicFileWriter::Sync::kNone); }

 private:
  AtomicFileWriter file_;
};

// A split's listed files, in listing order.
absl::StatusOr<std::vector<v1::ShardEntry>> ListedFiles(const v1::PlanShardsTask& task,
                                                        const std::string& split) {
  std::vector<v1::ShardEntry> entries;
  for (const auto& listed : task.listed()) {
    if (listed.split() != split) continue;
    const v1::LabelInfo& label = task.labels(listed.label_index());
    for (int chunk = 0; chunk < ChunkCount(listed.files(), task.files_per_chunk()); ++chunk) {
      v1::FileNames names;
      RETURN_IF_ERROR(ReadWorkspaceFile(
          ListChunkFile(task.workspace(), split, listed.label_index(), chunk), &names));
      for (auto& name : *names.mutable_names()) {
        v1::ShardEntry& e = entries.emplace_back();
        e.set_relative_path(absl::StrCat(label.name(), "/", name));
        e.set_label(label.id());
        e.set_label_text(label.name());
      }
    }
  }
  return entries;
}

}  // namespace

absl::StatusOr<v1::PlanShardsResult> RunPlanShardsTask(const v1::PlanShardsTask& task) {
  const v1::DatasetBuildSpec& spec = task.spec();
  for (const auto& listed : task.listed()) {
    if (listed.label_index() < 0 || listed.label_index() >= task.labels_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("plan task: label index ", listed.label_index(), " out of range"));
    }
  }
  RefusedList refused_list(task.workspace());
  RETURN_IF_ERROR(refused_list.Open());
  v1::PlanShardsResult result;
  for (const BuildSplit& split : BuildSplits(spec)) {
    for (const auto& listed : task.listed()) {
      if (listed.split() != split.name || listed.refused() == 0) continue;
      v1::SkippedFiles refused;
      RETURN_IF_ERROR(ReadWorkspaceFile(
          RefusedFile(task.workspace(), split.name, listed.label_index()), &refused));
      for (auto& f : *refused.mutable_files()) {
        RETURN_IF_ERROR(refused_list.Add(std::move(f), &result));
      }
    }
  }
  for (const BuildSplit& split : BuildSplits(spec)) {
    ASSIGN_OR_RETURN(std::vector<v1::ShardEntry> entries, ListedFiles(task, split.name));
    const int64_t files = static_cast<int64_t>(entries.size());
    if (split.name == "train") {
      result.set_train_records(files);
    } else {
      result.set_validation_records(files);
    }
    ShardPlanOptions o;
    o.split = split.name;
    o.num_shards = split.shards;
    o.format = split.format;
    o.seed = spec.seed();
    for (auto& shard : MakeShardTasks(std::move(entries), o)) {
      v1::ShardEntries dealt;
      *dealt.mutable_entries() = std::move(*shard.mutable_entries());
      RETURN_IF_ERROR(
          WriteWorkspaceFile(ShardEntriesFile(task.workspace(), shard.file_name()), dealt));
    }
  }
  RETURN_IF_ERROR(refused_list.Commit());
  return result;
}

}  // namespace retrain::worker
