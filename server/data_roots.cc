#include "server/data_roots.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"

namespace retrain::server {

namespace fs = std::filesystem;

absl::StatusOr<DataRoots> DataRoots::Create(const std::vector<std::string>& roots) {
  std::vector<std::string> normal;
  for (const auto& root : roots) {
    if (root.empty()) return absl::InvalidArgumentError("--data_root: empty path");
    normal.push_back(LexicallyNormalPath(fs::absolute(root).string()));
  }
  if (normal.empty()) return absl::InvalidArgumentError("at least one --data_root is needed");
  return DataRoots(std::move(normal));
}

bool DataRoots::Contains(const std::string& path) const { return PathIsUnderAny(path, roots_); }

absl::StatusOr<std::string> DataRoots::Resolve(const std::string& field,
                                               const std::string& path) const {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": contains a NUL byte"));
  }
  const fs::path p(path);
  if (!p.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", path, "' must be an absolute path"));
  }
  std::string normal = LexicallyNormalPath(path);
  if (!Contains(normal)) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, ": '", path, "' is outside the server's data roots (",
        absl::StrJoin(roots_, ", "), "); put the data under a root or start the server with "
        "another --data_root"));
  }
  return normal;
}

}  // namespace retrain::server
