// Reading a dataset's labels and listing its files. Pure file-system reads;
// nothing here is written.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "retrain/v1/dataset.pb.h"
#include "server/data_roots.h"

namespace retrain::server {

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

struct ScannedFile {
  std::string relative_path;  // "<label>/<name>", raw bytes
  int label_index = 0;        // index into the labels list
};

struct SplitScan {
  std::string split;      // "train" or "validation"
  std::string directory;  // canonical
  std::vector<ScannedFile> files;             // label order, then name order
  std::vector<retrain::v1::SkippedFile> skipped;  // refused while listing
};

// Lists `<directory>/<label>/*` for every label, in label order and then
// byte order of names. Subdirectories, symlink loops, dangling links and
// links leading outside `roots` are recorded as skipped. A label with no
// directory in this split contributes no files.
absl::StatusOr<SplitScan> ScanSplit(const std::string& split, const std::string& directory,
                                    const std::vector<std::string>& labels,
                                    const DataRoots& roots);

}  // namespace retrain::server
