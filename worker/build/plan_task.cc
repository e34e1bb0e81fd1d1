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

// The JSON-lines lists of a plan, and the first entries of each.
class Lists {
 public:
  explicit Lists(const std::string& workspace)
      : skipped_(dataset::JoinPath(workspace, dataset::kSkippedFile)),
        duplicates_(dataset::JoinPath(workspace, dataset::kDuplicatesFile)) {}

  absl::Status Open() {
    RETURN_IF_ERROR(skipped_.Open());
    return duplicates_.Open();
  }
  absl::Status Skip(v1::SkippedFile file, v1::PlanShardsResult* result) {
    RETURN_IF_ERROR(skipped_.Append(dataset::SkippedLine(
        {file.path(), file.split(), SkipReasonName(file.reason()), file.detail()})));
    result->set_num_skipped(result->num_skipped() + 1);
    if (result->first_skipped_size() < dataset::kManifestListLimit) {
      *result->add_first_skipped() = std::move(file);
    }
    return absl::OkStatus();
  }
  absl::Status Duplicates(std::vector<std::string> paths, v1::PlanShardsResult* result) {
    RETURN_IF_ERROR(duplicates_.Append(dataset::DuplicatesLine(paths)));
    result->set_num_duplicate_groups(result->num_duplicate_groups() + 1);
    if (result->first_duplicates_size() < dataset::kManifestListLimit) {
      auto* group = result->add_first_duplicates();
      for (auto& p : paths) group->add_paths(std::move(p));
    }
    return absl::OkStatus();
  }
  absl::Status Commit() {
    RETURN_IF_ERROR(skipped_.Commit(AtomicFileWriter::Sync::kNone));
    return duplicates_.Commit(AtomicFileWriter::Sync::kNone);
  }

 private:
  AtomicFileWriter skipped_;
  AtomicFileWriter duplicates_;
};

struct Split : BuildSplit {
  std::vector<v1::ShardEntry> entries;  // good files, in listing order
};

// Reads one split's validation outcomes: good files into `split.entries`,
// the others into the lists.
absl::Status ReadOutcomes(const v1::PlanShardsTask& task, Split& split, Lists& lists,
                          v1::PlanShardsResult* result) {
  for (const auto& listed : task.listed()) {
    if (listed.split() != split.name) continue;
    const v1::LabelInfo& label = task.labels(listed.label_index());
    for (int chunk = 0; chunk < ChunkCount(listed.files(), task.files_per_chunk()); ++chunk) {
      v1::FileNames names;
      v1::ProbeResult outcomes;
      RETURN_IF_ERROR(ReadWorkspaceFile(
          ListChunkFile(task.workspace(), split.name, listed.label_index(), chunk), &names));
      RETURN_IF_ERROR(ReadWorkspaceFile(
          ProbeOutcomeFile(task.workspace(), split.name, listed.label_index(), chunk), &outcomes));
      if (outcomes.files_size() != names.names_size()) {
        return absl::DataLossError(absl::StrCat(
            ProbeOutcomeFile(task.workspace(), split.name, listed.label_index(), chunk), ": ",
            outcomes.files_size(), " outcomes for ", names.names_size(), " files"));
      }
      for (int i = 0; i < names.names_size(); ++i) {
        const v1::FileProbe& probe = outcomes.files(i);
        std::string relative_path = absl::StrCat(label.name(), "/", names.names(i));
        if (!probe.ok()) {
          v1::SkippedFile skipped;
          skipped.set_path(EscapeNonUtf8(relative_path));
          skipped.set_split(split.name);
          skipped.set_reason(probe.reason());
          skipped.set_detail(probe.detail());
          RETURN_IF_ERROR(lists.Skip(std::move(skipped), result));
          continue;
        }
        v1::ShardEntry& e = split.entries.emplace_back();
        e.set_relative_path(std::move(relative_path));
        e.set_label(label.id());
        e.set_label_text(label.name());
        e.set_content_hash(probe.content_hash());
        e.set_cached_hash(probe.cached_hash());
      }
    }
  }
  return absl::OkStatus();
}

// Groups of identical contents across the splits, in order of their hash.
absl::Status FindDuplicates(const std::vector<Split>& splits, Lists& lists,
                            v1::PlanShardsResult* result) {
  struct File {
    const v1::ShardEntry* entry;
    const std::string* split;
  };
  std::vector<File> files;
  for (const auto& split : splits) {
    for (const auto& e : split.entries) files.push_back({&e, &split.name});
  }
  std::stable_sort(files.begin(), files.end(), [](const File& a, const File& b) {
    return a.entry->content_hash() < b.entry->content_hash();
  });
  for (size_t i = 0; i < files.size();) {
    size_t end = i + 1;
    while (end < files.size() &&
           files[end].entry->content_hash() == files[i].entry->content_hash()) {
      ++end;
    }
    if (end - i > 1) {
      std::vector<std::string> paths;
      for (size_t k = i; k < end; ++k) {
        paths.push_back(
            absl::StrCat(*files[k].split, "/", EscapeNonUtf8(files[k].entry->relative_path())));
      }
      RETURN_IF_ERROR(lists.Duplicates(std::move(paths), result));
    }
    i = end;
  }
  return absl::OkStatus();
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
  std::vector<Split> splits;
  for (BuildSplit& split : BuildSplits(spec)) splits.push_back({std::move(split), {}});
  Lists lists(task.workspace());
  RETURN_IF_ERROR(lists.Open());
  v1::PlanShardsResult result;
  // Refused while listing, then failed validation: the order of the lists.
  for (const auto& split : splits) {
    for (const auto& listed : task.listed()) {
      if (listed.split() != split.name || listed.refused() == 0) continue;
      v1::SkippedFiles refused;
      RETURN_IF_ERROR(ReadWorkspaceFile(
          RefusedFile(task.workspace(), split.name, listed.label_index()), &refused));
      for (auto& f : *refused.mutable_files()) RETURN_IF_ERROR(lists.Skip(std::move(f), &result));
    }
  }
  for (auto& split : splits) RETURN_IF_ERROR(ReadOutcomes(task, split, lists, &result));
  RETURN_IF_ERROR(FindDuplicates(splits, lists, &result));

  for (auto& split : splits) {
    const int64_t records = static_cast<int64_t>(split.entries.size());
    if (split.name == "train") {
      result.set_train_records(records);
    } else {
      result.set_validation_records(records);
    }
    ShardPlanOptions o;
    o.split = split.name;
    o.num_shards = split.shards;
    o.format = split.format;
    o.seed = spec.seed();
    for (auto& shard : MakeShardTasks(std::move(split.entries), o)) {
      v1::ShardEntries entries;
      *entries.mutable_entries() = std::move(*shard.mutable_entries());
      RETURN_IF_ERROR(
          WriteWorkspaceFile(ShardEntriesFile(task.workspace(), shard.file_name()), entries));
    }
  }
  RETURN_IF_ERROR(lists.Commit());
  return result;
}

}  // namespace retrain::worker
