#include "worker/build/check_task.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/dataset_build.h"
#include "common/files.h"
#include "common/request_refusal.h"
#include "common/status_macros.h"
#include "dataset/layout.h"
#include "worker/build/labels.h"
#include "worker/task_runner.h"

namespace retrain::worker {

namespace v1 = retrain::v1;
namespace fs = std::filesystem;

namespace {

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

// Shard files already in the output directory that this build would not
// overwrite: readers glob train-* / validation-*, so they would mix in.
absl::Status CheckOutputDirectory(const v1::DatasetBuildSpec& spec) {
  std::error_code ec;
  if (!fs::exists(spec.output_directory(), ec)) return absl::OkStatus();
  if (!fs::is_directory(spec.output_directory(), ec)) {
    return absl::InvalidArgumentError(absl::StrCat("output_directory: '", spec.output_directory(),
                                                   "' exists and is not a directory"));
  }
  std::set<std::string> ours;
  for (const BuildSplit& split : BuildSplits(spec)) {
    for (int i = 0; i < split.shards; ++i) ours.insert(split.ShardFile(i));
  }
  std::vector<std::string> foreign;
  for (const auto& e : fs::directory_iterator(spec.output_directory(), ec)) {
    const std::string name = e.path().filename().string();
    const bool shard = name.rfind("train-", 0) == 0 || name.rfind("validation-", 0) == 0;
    if (shard && ours.count(name) == 0) foreign.push_back(EscapeNonUtf8(name));
  }
  if (!foreign.empty()) {
    std::sort(foreign.begin(), foreign.end());
    if (foreign.size() > 3) foreign.resize(3), foreign.push_back("...");
    return absl::FailedPreconditionError(
        absl::StrCat("output_directory: '", spec.output_directory(),
                     "' already holds shards of another build (", absl::StrJoin(foreign, ", "),
                     ") that readers would mix in; use an empty directory or remove them"));
  }
  return absl::OkStatus();
}

// The labels file's names, each with a directory in the first split.
absl::StatusOr<std::vector<std::string>> LabelsFromFile(const v1::DatasetBuildSpec& spec,
                                                        const std::string& primary,
                                                        const char* primary_field) {
  auto content = ReadFile(spec.labels_file());
  if (!content.ok()) {
    return absl::Status(content.status().code() == absl::StatusCode::kNotFound
                            ? absl::StatusCode::kNotFound
                            : absl::StatusCode::kInvalidArgument,
                        absl::StrCat("labels_file: ", content.status().message()));
  }
  ASSIGN_OR_RETURN(std::vector<LabelLine> lines, ParseLabels(*content, spec.labels_file()));
  std::vector<std::string> names, missing;
  for (const auto& l : lines) {
    struct stat st;
    const std::string dir = primary + "/" + l.name;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      missing.push_back(absl::StrCat("line ", l.line, " '", EscapeNonUtf8(l.name), "'"));
    }
    names.push_back(l.name);
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("labels_file ", spec.labels_file(), ": ", absl::StrJoin(missing, ", "),
                     missing.size() == 1 ? " has" : " have", " no directory in ", primary_field,
                     " ", primary, "; fix the name or create the directory"));
  }
  return names;
}

// The checks, in the order the fields are read; the labels in their order.
absl::StatusOr<std::vector<std::string>> CheckAndReadLabels(const v1::CheckBuildTask& task) {
  const v1::DatasetBuildSpec& spec = task.spec();
  const std::vector<std::string> roots(task.data_roots().begin(), task.data_roots().end());
  struct Path {
    const char* field;
    const std::string& path;
  };
  for (const Path& p : {Path{"train_directory", spec.train_directory()},
                        Path{"validation_directory", spec.validation_directory()},
                        Path{"output_directory", spec.output_directory()},
                        Path{"labels_file", spec.labels_file()}}) {
    if (!p.path.empty()) RETURN_IF_ERROR(CheckUnderRootsOnThisHost(p.field, p.path, roots));
  }
  // The coordinator compared the spellings; a symlink may still make the
  // output one of the inputs.
  std::error_code ec;
  const fs::path output = fs::weakly_canonical(spec.output_directory(), ec);
  for (const std::string* input : {&spec.train_directory(), &spec.validation_directory()}) {
    if (!input->empty() && fs::weakly_canonical(*input, ec) == output) {
      return absl::InvalidArgumentError(absl::StrCat(
          "output_directory: '", spec.output_directory(), "' is '", *input,
          "' by another name; it must differ from the train and validation directories"));
    }
  }
  if (!spec.train_directory().empty()) {
    RETURN_IF_ERROR(CheckDirectory("train_directory", spec.train_directory()));
  }
  if (!spec.validation_directory().empty()) {
    RETURN_IF_ERROR(CheckDirectory("validation_directory", spec.validation_directory()));
  }
  RETURN_IF_ERROR(CheckOutputDirectory(spec));

  // Labels: the labels file in order, or the sorted label directories.
  const bool train = !spec.train_directory().empty();
  const std::string& primary = train ? spec.train_directory() : spec.validation_directory();
  const char* primary_field = train ? "train_directory" : "validation_directory";
  if (!spec.labels_file().empty()) return LabelsFromFile(spec, primary, primary_field);
  auto listed = ListLabelDirectories(primary);
  if (!listed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(primary_field, ": ", listed.status().message()));
  }
  if (listed->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(primary_field, ": '", primary,
                     "' has no label subdirectories; expected <dir>/<label>/<image files>"));
  }
  return listed;
}

bool IsRefusal(absl::StatusCode code) {
  return code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kNotFound ||
         code == absl::StatusCode::kPermissionDenied ||
         code == absl::StatusCode::kFailedPrecondition;
}

}  // namespace

absl::StatusOr<v1::CheckBuildResult> RunCheckBuildTask(const v1::CheckBuildTask& task) {
  absl::StatusOr<std::vector<std::string>> labels = CheckAndReadLabels(task);
  v1::CheckBuildResult result;
  if (!labels.ok()) {
    if (!IsRefusal(labels.status().code())) return labels.status();
    *result.mutable_refusal() = RefusalOf(labels.status());
    return result;
  }
  for (auto& name : *labels) result.add_labels(std::move(name));
  return result;
}

}  // namespace retrain::worker
