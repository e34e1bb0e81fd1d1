#include "worker/build/workspace.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace retrain::worker {

std::string ListChunkFile(const std::string& workspace, const std::string& split, int label,
                          int chunk) {
  return absl::StrCat(workspace, "/list/", split, "-", label, "-", chunk, ".names");
}

std::string RefusedFile(const std::string& workspace, const std::string& split, int label) {
  return absl::StrCat(workspace, "/list/", split, "-", label, ".refused");
}

std::string ShardEntriesFile(const std::string& workspace, const std::string& shard_file) {
  return absl::StrCat(workspace, "/shards/", shard_file, ".entries");
}

std::string ShardWrittenFile(const std::string& workspace, const std::string& shard_file) {
  return absl::StrCat(workspace, "/shards/", shard_file, ".written");
}

int ChunkCount(int64_t files, int files_per_chunk) {
  return static_cast<int>((files + files_per_chunk - 1) / files_per_chunk);
}

absl::Status WriteWorkspaceFile(const std::string& path,
                                const google::protobuf::MessageLite& message) {
  std::error_code ec;
  const std::string dir = std::filesystem::path(path).parent_path();
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::Status(ErrnoToCode(ec.value()),
                        absl::StrCat(dir, ": cannot create: ", ec.message()));
  }
  return WriteFileAtomically(path, message.SerializeAsString(), AtomicFileWriter::Sync::kNone);
}

absl::Status ReadWorkspaceFile(const std::string& path, google::protobuf::MessageLite* message) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  if (!message->ParseFromString(*bytes)) {
    return absl::DataLossError(
        absl::StrCat(path, ": damaged (a build's workspace file); build the dataset again"));
  }
  return absl::OkStatus();
}

}  // namespace retrain::worker
