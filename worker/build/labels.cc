#include "worker/build/labels.h"

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

namespace retrain::worker {

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
      problems.push_back(
          absl::StrCat("line ", line_no, " '", shown,
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

absl::StatusOr<std::vector<std::string>> ListLabelDirectories(const std::string& dir) {
  auto entries = ListDirectorySorted(dir);
  if (!entries.ok()) return entries.status();
  std::vector<std::string> labels;
  for (const auto& e : *entries) {
    if (e.name[0] == '.' || e.regular_file) continue;
    struct stat st;
    if (::stat((dir + "/" + e.name).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      labels.push_back(e.name);
    }
  }
  return labels;
}

}  // namespace retrain::worker
