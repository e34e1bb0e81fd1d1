// The folders a coordinator's jobs may read and write. Every path in a
// request is confined here before it is accepted, by its spelling alone:
// the coordinator reads no data, so the workers check each path again on
// their file system, symlinks followed (each job kind's first task: e.g.
// worker/build/check_task.h).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace retrain::server {

// Immutable after construction; thread-safe.
class DataRoots {
 public:
  // `roots` are made absolute (against the working directory) and
  // lexically normal; they need not exist on the coordinator's machine.
  static absl::StatusOr<DataRoots> Create(const std::vector<std::string>& roots);

  // `path` lexically normal (`.` and `..` applied, no trailing '/'), when
  // it lies under a root as spelled. `field` names the request field in
  // errors: INVALID_ARGUMENT when empty, relative or holding a NUL byte,
  // PERMISSION_DENIED when outside the roots.
  absl::StatusOr<std::string> Resolve(const std::string& field, const std::string& path) const;

  // True when `normal_path` (lexically normal) lies under a root.
  bool Contains(const std::string& normal_path) const;

  const std::vector<std::string>& roots() const { return roots_; }

 private:
  explicit DataRoots(std::vector<std::string> roots) : roots_(std::move(roots)) {}
  std::vector<std::string> roots_;
};

}  // namespace retrain::server
