#include "worker/build/finalize_task.h"

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/dataset_build.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "dataset/layout.h"
#include "dataset/manifest.h"
#include "worker/build/dataset_manifest.h"
#include "worker/build/workspace.h"

namespace retrain::worker {

namespace v1 = retrain::v1;
namespace fs = std::filesystem;

namespace {

// Removes temporary files that writers killed mid-write left behind for
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

// The result a finished finalization wrote into the manifest.
absl::StatusOr<v1::DatasetBuildResult> ResultFromManifest(const v1::Job& job) {
  const std::string& dir = job.dataset_build().output_directory();
  dataset::Manifest m;
  std::string error;
  if (!dataset::ReadManifest(dir, &m, &error) || m.job_id != job.id()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the build's workspace ", dataset::BuildWorkspaceDirectory(dir),
        " is gone and no manifest of this build is there; build the dataset again"));
  }
  v1::DatasetBuildResult r = job.dataset_build_result();
  r.set_output_directory(dir);
  r.set_manifest(dataset::JoinPath(dir, dataset::kManifestFile));
  for (const auto& [name, split] : m.splits) {
    v1::SplitResult* out = SplitResultOf(name, &r);
    out->set_num_records(split.num_records);
    out->set_num_converted(split.num_converted);
    for (const auto& s : split.shards) {
      auto* shard = out->add_shards();
      shard->set_file(s.file);
      shard->set_num_records(s.num_records);
      shard->set_num_bytes(s.num_bytes);
      shard->set_sha256(s.sha256);
    }
    for (const auto& c : split.class_counts) {
      auto* count = out->add_class_counts();
      count->set_label(static_cast<int32_t>(c.id));
      count->set_name(c.name);
      count->set_count(c.count);
    }
  }
  r.clear_skipped();
  for (const auto& s : m.skipped) {
    auto* f = r.add_skipped();
    f->set_path(s.path);
    f->set_split(s.split);
    v1::SkipReason reason = v1::SKIP_REASON_UNSPECIFIED;
    v1::SkipReason_Parse("SKIP_REASON_" + absl::AsciiStrToUpper(s.reason), &reason);
    f->set_reason(reason);
    f->set_detail(s.detail);
  }
  r.clear_duplicates();
  for (const auto& group : m.duplicates) {
    auto* d = r.add_duplicates();
    for (const auto& p : group) d->add_paths(p);
  }
  r.set_num_skipped(m.num_skipped);
  r.set_num_duplicate_groups(m.num_duplicate_groups);
  r.set_skipped_file(m.skipped_file);
  r.set_duplicates_file(m.duplicates_file);
  return r;
}

}  // namespace

absl::StatusOr<v1::FinalizeBuildResult> RunFinalizeBuildTask(const v1::FinalizeBuildTask& task) {
  const v1::Job& job = task.job();
  const v1::DatasetBuildSpec& spec = job.dataset_build();
  const std::string& output = spec.output_directory();
  v1::FinalizeBuildResult out;
  std::error_code ec;
  if (!fs::exists(task.workspace(), ec)) {
    ASSIGN_OR_RETURN(*out.mutable_result(), ResultFromManifest(job));
    return out;
  }
  v1::DatasetBuildResult result = job.dataset_build_result();
  result.set_output_directory(output);
  result.set_manifest(dataset::JoinPath(output, dataset::kManifestFile));
  result.set_skipped_file(dataset::kSkippedFile);
  result.set_duplicates_file(dataset::kDuplicatesFile);
  std::set<std::string> outputs = {dataset::kLabelsFile, dataset::kManifestFile,
                                   dataset::kSkippedFile, dataset::kDuplicatesFile};
  std::string skipped_lines;  // skipped while writing the shards
  for (const BuildSplit& split : BuildSplits(spec)) {
    v1::SplitResult* split_result = SplitResultOf(split.name, &result);
    std::map<int, int64_t> per_label;
    for (int i = 0; i < split.shards; ++i) {
      const std::string file = split.ShardFile(i);
      outputs.insert(file);
      outputs.insert(fs::path(dataset::IndexFileFor(file)).filename());
      v1::ShardResult written;
      struct stat st;
      if (!ReadWorkspaceFile(ShardWrittenFile(task.workspace(), file), &written).ok() ||
          ::stat(dataset::JoinPath(output, file).c_str(), &st) != 0 ||
          st.st_size != written.shard().num_bytes()) {
        out.add_missing_shards(file);
        continue;
      }
      *split_result->add_shards() = written.shard();
      split_result->set_num_records(split_result->num_records() + written.shard().num_records());
      split_result->set_num_converted(split_result->num_converted() + written.num_converted());
      for (const auto& c : written.class_counts()) per_label[c.label()] += c.count();
      for (const auto& s : written.skipped()) {
        skipped_lines += dataset::SkippedLine(
            {s.path(), s.split(), SkipReasonName(s.reason()), s.detail()});
        result.set_num_skipped(result.num_skipped() + 1);
        if (result.skipped_size() < dataset::kManifestListLimit) *result.add_skipped() = s;
      }
    }
    for (const auto& l : result.labels()) {
      auto* c = split_result->add_class_counts();
      c->set_label(l.id());
      c->set_name(l.name());
      c->set_count(per_label[l.id()]);
    }
  }
  if (out.missing_shards_size() > 0) return out;

  ASSIGN_OR_RETURN(std::string skipped,
                   ReadFile(dataset::JoinPath(task.workspace(), dataset::kSkippedFile)));
  ASSIGN_OR_RETURN(const std::string duplicates,
                   ReadFile(dataset::JoinPath(task.workspace(), dataset::kDuplicatesFile)));
  skipped += skipped_lines;
  RETURN_IF_ERROR(WriteFileAtomically(dataset::JoinPath(output, dataset::kSkippedFile), skipped));
  RETURN_IF_ERROR(
      WriteFileAtomically(dataset::JoinPath(output, dataset::kDuplicatesFile), duplicates));
  RETURN_IF_ERROR(WriteFileAtomically(dataset::JoinPath(output, dataset::kLabelsFile),
                                      LabelsText(result, spec.background_class())));
  RETURN_IF_ERROR(WriteFileAtomically(result.manifest(), DatasetManifestJson(job, result)));
  RemoveAbandonedTemporaries(output, outputs);
  fs::remove_all(dataset::ConversionCacheDirectory(output), ec);
  fs::remove_all(task.workspace(), ec);
  *out.mutable_result() = std::move(result);
  return out;
}

}  // namespace retrain::worker
