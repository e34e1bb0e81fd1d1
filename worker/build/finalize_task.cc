#include "worker/build/finalize_task.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

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

// A file a shard holds, by its content.
struct WrittenFile {
  std::string content_hash;
  int split;         // in BuildSplits() order
  std::string path;  // "<split>/<relative path>", escaped as the lists write it
};

// Writes every group of files with identical contents to duplicates.jsonl
// (groups in order of their hash, paths in split and path order), the first
// groups and their number into `result`.
absl::Status WriteDuplicates(std::vector<WrittenFile> files, const std::string& output,
                             v1::DatasetBuildResult* result) {
  std::sort(files.begin(), files.end(), [](const WrittenFile& a, const WrittenFile& b) {
    return std::tie(a.content_hash, a.split, a.path) < std::tie(b.content_hash, b.split, b.path);
  });
  std::string lines;
  int64_t groups = 0;
  for (size_t i = 0; i < files.size();) {
    size_t end = i + 1;
    while (end < files.size() && files[end].content_hash == files[i].content_hash) ++end;
    if (end - i > 1) {
      std::vector<std::string> paths;
      for (size_t k = i; k < end; ++k) paths.push_back(std::move(files[k].path));
      lines += dataset::DuplicatesLine(paths);
      ++groups;
      if (result->duplicates_size() < dataset::kManifestListLimit) {
        auto* group = result->add_duplicates();
        for (auto& p : paths) group->add_paths(std::move(p));
      }
    }
    i = end;
  }
  result->set_num_duplicate_groups(groups);
  return WriteFileAtomically(dataset::JoinPath(output, dataset::kDuplicatesFile), lines);
}

// The files shard `file` of `split` holds, from its entries and what its
// task wrote; false when the two do not match (the shard is written again).
bool AddWrittenFiles(const std::string& workspace, const std::string& file, int split,
                     const std::string& split_name, const v1::ShardResult& written,
                     std::vector<WrittenFile>* files) {
  v1::ShardEntries entries;
  if (!ReadWorkspaceFile(ShardEntriesFile(workspace, file), &entries).ok() ||
      entries.entries_size() != written.content_hashes_size()) {
    return false;
  }
  for (int i = 0; i < entries.entries_size(); ++i) {
    if (written.content_hashes(i).empty()) continue;  // skipped
    files->push_back(
        {written.content_hashes(i), split,
         absl::StrCat(split_name, "/", EscapeNonUtf8(entries.entries(i).relative_path()))});
  }
  return true;
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
  std::vector<std::pair<int, v1::SkippedFile>> skipped_in_shards;  // with their split's index
  std::vector<WrittenFile> files;
  const std::vector<BuildSplit> splits = BuildSplits(spec);
  for (int split_index = 0; split_index < static_cast<int>(splits.size()); ++split_index) {
    const BuildSplit& split = splits[split_index];
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
          st.st_size != written.shard().num_bytes() ||
          !AddWrittenFiles(task.workspace(), file, split_index, split.name, written, &files)) {
        out.add_missing_shards(file);
        continue;
      }
      *split_result->add_shards() = written.shard();
      split_result->set_num_records(split_result->num_records() + written.shard().num_records());
      split_result->set_num_converted(split_result->num_converted() + written.num_converted());
      for (const auto& c : written.class_counts()) per_label[c.label()] += c.count();
      for (const auto& s : written.skipped()) skipped_in_shards.emplace_back(split_index, s);
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
  // After those refused while listing: those the shard tasks skipped, by
  // split and path (not in the shards' shuffled order).
  std::sort(skipped_in_shards.begin(), skipped_in_shards.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first, a.second.path()) < std::tie(b.first, b.second.path());
  });
  for (const auto& [split_index, s] : skipped_in_shards) {
    skipped += dataset::SkippedLine({s.path(), s.split(), SkipReasonName(s.reason()), s.detail()});
    result.set_num_skipped(result.num_skipped() + 1);
    if (result.skipped_size() < dataset::kManifestListLimit) *result.add_skipped() = s;
  }
  RETURN_IF_ERROR(WriteFileAtomically(dataset::JoinPath(output, dataset::kSkippedFile), skipped));
  RETURN_IF_ERROR(WriteDuplicates(std::move(files), output, &result));
  RETURN_IF_ERROR(WriteFileAtomically(dataset::JoinPath(output, dataset::kLabelsFile),
                                      LabelsText(result, spec.background_class())));
  RETURN_IF_ERROR(WriteFileAtomically(result.manifest(), DatasetManifestJson(job, result)));
  RemoveAbandonedTemporaries(output, outputs);
  fs::remove_all(task.workspace(), ec);
  *out.mutable_result() = std::move(result);
  return out;
}

}  // namespace retrain::worker
