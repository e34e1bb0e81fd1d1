#include "server/dataset_scan.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/files.h"

namespace retrain::server {

namespace fs = std::filesystem;
using retrain::v1::SkippedFile;
using retrain::v1::SkipReason;

absl::StatusOr<std::vector<LabelLine>> ParseLabels(std::string_view content,
                                                   const std::string& file) {
  std::vector<LabelLine> labels;
  std::vector<std::string> problems;
  std::map<std::string, int> first_line;
  int line_no = 0;
  for (absl::string_view raw :
       absl::StrSplit(absl::string_view(content.data(), content.size()), '\n')) {
    ++line_no;
    std::string name(absl::StripAsciiWhitespace(raw));
    if (name.empty()) continue;
    const std::string shown = EscapeNonUtf8(name);
    if (name.find('/') != std::string::npos || name.find('\\') != std::string::npos ||
        name.find('\0') != std::string::npos) {
      problems.push_back(absl::StrCat("line ", line_no, " '", shown,
                                      "' contains a path separator; a label is one directory name"));
      continue;
    }
    if (name == "." || name == "..") {
      problems.push_back(absl::StrCat("line ", line_no, " '", shown, "' is not a directory name"));
      continue;
    }
    auto [it, inserted] = first_line.emplace(name, line_no);
    if (!inserted) {
      problems.push_back(
          absl::StrCat("line ", line_no, " '", shown, "' repeats line ", it->second));
      continue;
    }
    labels.push_back({name, line_no});
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("labels_file ", file, ": ", absl::StrJoin(problems, "; ")));
  }
  if (labels.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("labels_file ", file, ": has no labels"));
  }
  return labels;
}

namespace {

// Directory entries of `dir` as raw names, sorted bytewise. "." and ".."
// are left out.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    int err = errno;
    return absl::Status(ErrnoToCode(err), absl::StrCat(dir, ": cannot list: ", std::strerror(err)));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(std::move(name));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

SkippedFile Skip(const std::string& split, const std::string& rel, SkipReason reason,
                 std::string detail) {
  SkippedFile s;
  s.set_path(EscapeNonUtf8(rel));
  s.set_split(split);
  s.set_reason(reason);
  s.set_detail(std::move(detail));
  return s;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ListLabelDirectories(const std::string& dir) {
  auto names = ListDirectory(dir);
  if (!names.ok()) return names.status();
  std::vector<std::string> labels;
  for (const auto& name : *names) {
    if (name[0] == '.') continue;
    struct stat st;
    if (::stat((dir + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      labels.push_back(name);
    }
  }
  return labels;
}

absl::StatusOr<SplitScan> ScanSplit(const std::string& split, const std::string& directory,
                                    const std::vector<std::string>& labels,
                                    const DataRoots& roots) {
  SplitScan scan;
  scan.split = split;
  scan.directory = directory;
  for (size_t li = 0; li < labels.size(); ++li) {
    const std::string label_dir = directory + "/" + labels[li];
    struct stat st;
    if (::stat(label_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    auto names = ListDirectory(label_dir);
    if (!names.ok()) {
      scan.skipped.push_back(Skip(split, labels[li] + "/", v1::SKIP_REASON_UNREADABLE,
                                  std::string(names.status().message())));
      continue;
    }
    for (const auto& name : *names) {
      const std::string rel = labels[li] + "/" + name;
      const std::string full = label_dir + "/" + name;
      struct stat lst;
      if (::lstat(full.c_str(), &lst) != 0) {
        scan.skipped.push_back(
            Skip(split, rel, v1::SKIP_REASON_UNREADABLE, std::strerror(errno)));
        continue;
      }
      if (S_ISLNK(lst.st_mode)) {
        struct stat target;
        if (::stat(full.c_str(), &target) != 0) {
          const int err = errno;
          scan.skipped.push_back(Skip(split, rel, v1::SKIP_REASON_UNREADABLE,
                                      err == ELOOP ? "symlink loop"
                                                   : absl::StrCat("broken symlink: ",
                                                                  std::strerror(err))));
          continue;
        }
        std::error_code ec;
        const std::string resolved = fs::canonical(full, ec).string();
        if (ec || !roots.Contains(resolved)) {
          scan.skipped.push_back(Skip(split, rel, v1::SKIP_REASON_UNREADABLE,
                                      "symlink leads outside the data roots"));
          continue;
        }
        lst = target;
      }
      if (!S_ISREG(lst.st_mode)) {
        scan.skipped.push_back(Skip(split, rel, v1::SKIP_REASON_NOT_A_FILE,
                                    S_ISDIR(lst.st_mode) ? "a directory" : "not a regular file"));
        continue;
      }
      scan.files.push_back({rel, static_cast<int>(li)});
    }
  }
  return scan;
}

}  // namespace retrain::server
