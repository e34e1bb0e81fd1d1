// Reading a dataset build's labels in its check task (check_task.h): the
// labels file, or the label directories. (Their files are listed by list
// tasks: listing.h.)
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace retrain::worker {

struct LabelLine {
  std::string name;
  int line = 0;  // 1-based line in the labels file
};

// Parses a labels file: one directory name per line, surrounding spaces
// stripped, blank lines ignored. Duplicate names, names with a path
// separator and "." / ".." are INVALID_ARGUMENT listing every bad line.
// `file` only names the file in errors.
absl::StatusOr<std::vector<LabelLine>> ParseLabels(std::string_view content,
                                                   const std::string& file);

// Sorted names of the subdirectories of `dir` (the labels when no labels
// file is given). Hidden directories are left out.
absl::StatusOr<std::vector<std::string>> ListLabelDirectories(const std::string& dir);

}  // namespace retrain::worker
