// Listing one label directory of a dataset build's split (the build's first
// phase, on the workers).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "retrain/v1/dataset.pb.h"
#include "retrain/v1/worker.pb.h"

namespace retrain::worker {

struct LabelListing {
  std::vector<std::string> names;                 // raw bytes, sorted bytewise
  std::vector<retrain::v1::SkippedFile> refused;  // in name order
};

// Lists `<split_directory>/<label>/*`: regular files (or symlinks to them
// under one of `data_roots`, which are canonical) are kept; subdirectories,
// other file types, symlink loops, dangling links and links leading out of
// the roots are refused with a reason. A label without a directory in this
// split has no files. A directory that cannot be read is one refused entry
// ("<label>/").
LabelListing ListLabelDirectory(const std::string& split, const std::string& split_directory,
                                const std::string& label,
                                const std::vector<std::string>& data_roots);

// Runs a ListTask (its data roots as the coordinator spells them): lists each of its label
// directories and writes their chunks and refused entries to the workspace
// (worker/build/workspace.h). Errors: the workspace cannot be written.
absl::StatusOr<retrain::v1::ListResult> RunListTask(const retrain::v1::ListTask& task);

}  // namespace retrain::worker
