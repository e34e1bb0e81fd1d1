#include "worker/build/listing.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "worker/build/workspace.h"

namespace retrain::worker {

namespace v1 = retrain::v1;
namespace fs = std::filesystem;

namespace {

v1::SkippedFile Refused(const std::string& split, const std::string& relative_path,
                        v1::SkipReason reason, std::string detail) {
  v1::SkippedFile s;
  s.set_path(EscapeNonUtf8(relative_path));
  s.set_split(split);
  s.set_reason(reason);
  s.set_detail(std::move(detail));
  return s;
}

// True when the entry `full` (relative path `rel`) is a regular file or a
// symlink to one under the roots; else false with *refused saying why.
bool Admit(const std::string& split, const std::string& rel, const std::string& full,
           const std::vector<std::string>& data_roots, v1::SkippedFile* refused) {
  struct stat st;
  if (::lstat(full.c_str(), &st) != 0) {
    *refused = Refused(split, rel, v1::SKIP_REASON_UNREADABLE, std::strerror(errno));
    return false;
  }
  if (S_ISLNK(st.st_mode)) {
    struct stat target;
    if (::stat(full.c_str(), &target) != 0) {
      const int err = errno;
      *refused = Refused(split, rel, v1::SKIP_REASON_UNREADABLE,
                         err == ELOOP ? "symlink loop"
                                      : absl::StrCat("broken symlink: ", std::strerror(err)));
      return false;
    }
    std::error_code ec;
    const std::string resolved = fs::canonical(full, ec).string();
    if (ec || !PathIsUnderAny(resolved, data_roots)) {
      *refused =
          Refused(split, rel, v1::SKIP_REASON_UNREADABLE, "symlink leads outside the data roots");
      return false;
    }
    st = target;
  }
  if (!S_ISREG(st.st_mode)) {
    *refused = Refused(split, rel, v1::SKIP_REASON_NOT_A_FILE,
                       S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
    return false;
  }
  return true;
}

}  // namespace

LabelListing ListLabelDirectory(const std::string& split, const std::string& split_directory,
                                const std::string& label,
                                const std::vector<std::string>& data_roots) {
  LabelListing listing;
  const std::string dir = split_directory + "/" + label;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return listing;
  absl::StatusOr<std::vector<DirectoryEntry>> entries = ListDirectorySorted(dir);
  if (!entries.ok()) {
    listing.refused.push_back(Refused(split, label + "/", v1::SKIP_REASON_UNREADABLE,
                                      std::string(entries.status().message())));
    return listing;
  }
  for (auto& e : *entries) {
    v1::SkippedFile refused;
    // A regular file by the directory's word needs no stat (most of them).
    if (e.regular_file || Admit(split, label + "/" + e.name, dir + "/" + e.name, data_roots,
                                &refused)) {
      listing.names.push_back(std::move(e.name));
    } else {
      listing.refused.push_back(std::move(refused));
    }
  }
  return listing;
}

absl::StatusOr<v1::ListResult> RunListTask(const v1::ListTask& task) {
  const std::vector<std::string> roots =
      CanonicalRoots({task.data_roots().begin(), task.data_roots().end()});
  const int per_chunk = std::max(1, task.files_per_chunk());
  v1::ListResult result;
  for (int k = 0; k < task.labels_size(); ++k) {
    const int label_index = task.first_label_index() + k;
    LabelListing listing =
        ListLabelDirectory(task.split(), task.directory(), task.labels(k), roots);
    const int64_t n = static_cast<int64_t>(listing.names.size());
    for (int chunk = 0; chunk < ChunkCount(n, per_chunk); ++chunk) {
      v1::FileNames names;
      const int64_t end = std::min<int64_t>(n, int64_t{chunk + 1} * per_chunk);
      for (int64_t i = int64_t{chunk} * per_chunk; i < end; ++i) {
        names.add_names(std::move(listing.names[i]));
      }
      RETURN_IF_ERROR(WriteWorkspaceFile(
          ListChunkFile(task.workspace(), task.split(), label_index, chunk), names));
    }
    if (!listing.refused.empty()) {
      v1::SkippedFiles refused;
      for (auto& r : listing.refused) *refused.add_files() = std::move(r);
      RETURN_IF_ERROR(
          WriteWorkspaceFile(RefusedFile(task.workspace(), task.split(), label_index), refused));
    }
    v1::ListedLabel& listed = *result.add_listed();
    listed.set_split(task.split());
    listed.set_label_index(label_index);
    listed.set_files(n);
    listed.set_refused(static_cast<int64_t>(listing.refused.size()));
  }
  return result;
}

}  // namespace retrain::worker
