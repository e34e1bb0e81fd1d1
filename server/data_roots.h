// The folders a coordinator may read and write. Every path in a request is
// resolved here before anything touches it.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace retrain::server {

// Immutable after construction; thread-safe.
class DataRoots {
 public:
  // `roots` must exist; they are canonicalised (symlinks resolved).
  static absl::StatusOr<DataRoots> Create(const std::vector<std::string>& roots);

  // Resolves `path` (absolute; `..` and symlinks followed) and checks that
  // the result lies under a root. `field` names the request field in
  // errors. Missing paths are fine here (an output directory may not exist
  // yet): the existing prefix is resolved and the rest appended.
  // PERMISSION_DENIED when outside the roots, INVALID_ARGUMENT when empty
  // or relative.
  absl::StatusOr<std::string> Resolve(const std::string& field, const std::string& path) const;

  // True when `canonical_path` (already resolved) lies under a root.
  bool Contains(const std::string& canonical_path) const;

  const std::vector<std::string>& roots() const { return roots_; }

 private:
  explicit DataRoots(std::vector<std::string> roots) : roots_(std::move(roots)) {}
  std::vector<std::string> roots_;
};

}  // namespace retrain::server
