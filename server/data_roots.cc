#include "server/data_roots.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"

namespace retrain::server {

namespace fs = std::filesystem;

absl::StatusOr<DataRoots> DataRoots::Create(const std::vector<std::string>& roots) {
  std::vector<std::string> canonical;
  for (const auto& root : roots) {
    std::error_code ec;
    fs::path p = fs::canonical(fs::absolute(root), ec);
    if (ec || !fs::is_directory(p)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--data_root ", root, ": not an existing directory"));
    }
    canonical.push_back(p.string());
  }
  if (canonical.empty()) return absl::InvalidArgumentError("at least one --data_root is needed");
  return DataRoots(std::move(canonical));
}

bool DataRoots::Contains(const std::string& path) const { return PathIsUnderAny(path, roots_); }

absl::StatusOr<std::string> DataRoots::Resolve(const std::string& field,
                                               const std::string& path) const {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": contains a NUL byte"));
  }
  fs::path p(path);
  if (!p.is_absolute()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", path, "' must be an absolute path"));
  }
  std::error_code ec;
  // Resolves symlinks of the existing prefix, then `..` lexically.
  fs::path resolved = fs::weakly_canonical(p, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": cannot resolve '", path, "': ", ec.message()));
  }
  std::string s = resolved.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  if (!Contains(s)) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, ": '", path, "' is outside the server's data roots (",
        absl::StrJoin(roots_, ", "), "); put the data under a root or start the server with "
        "another --data_root"));
  }
  return s;
}

}  // namespace retrain::server
