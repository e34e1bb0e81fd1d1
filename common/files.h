// Small file-system helpers with the durability rules the project relies on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace retrain {

// Reads a whole file. Errors name the path and keep errno's meaning in the
// code: NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION (a directory,
// a symlink loop), else UNKNOWN.
absl::StatusOr<std::string> ReadFile(const std::string& path);

struct DirectoryEntry {
  std::string name;  // raw bytes
  // The directory says it is a regular file (not a symlink): no stat needed.
  // False also when the file system does not say (then stat it).
  bool regular_file = false;
};

// The entries of `dir`, sorted bytewise by name, without "." and "..".
// Errors name the directory and keep errno's meaning in the code.
absl::StatusOr<std::vector<DirectoryEntry>> ListDirectorySorted(const std::string& dir);

// fsyncs a directory so that renames and new entries in it are durable.
absl::Status SyncDirectory(const std::string& dir);

// Writes a file so that readers only ever see nothing or all of it: the
// bytes go to a hidden temporary name in the same directory, are fsynced,
// and the file is renamed into place and its directory fsynced. Not
// thread-safe; one instance writes one file.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();  // removes the temporary file unless committed
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  absl::Status Open();
  absl::Status Append(std::string_view data);
  // From now on, a thread of this writer writes the appended bytes back to
  // the disk every `every_bytes` while appending goes on, so that a durable
  // Commit() finds little left to write. Call after Open().
  void StartWriteBehind(int64_t every_bytes);
  enum class Sync {
    // The data and the rename survive a power loss.
    kDurable,
    // No fsync: the rename is still atomic for other processes and across
    // a crash of this one, but a power loss may leave an empty or partial
    // file. For caches whose contents are checked when read.
    kNone,
  };
  // Renames the file into place (after fsyncing it and, then, its
  // directory when kDurable).
  absl::Status Commit(Sync sync = Sync::kDurable);
  int64_t bytes_written() const { return bytes_written_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string temp_path_;
  class WriteBehind;
  // Stops the write-behind thread; its first error, if any.
  absl::Status StopWriteBehind();

  int fd_ = -1;
  int64_t bytes_written_ = 0;
  bool committed_ = false;
  std::unique_ptr<WriteBehind> write_behind_;
};

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents,
                                 AtomicFileWriter::Sync sync = AtomicFileWriter::Sync::kDurable);

// Returns `bytes` as valid UTF-8: each byte that is not part of a valid
// UTF-8 sequence becomes "\xNN".
std::string EscapeNonUtf8(std::string_view bytes);

// True when `path` is one of `roots` or lies under one (string prefixes
// at a '/' boundary; both sides already canonical).
bool PathIsUnderAny(const std::string& path, const std::vector<std::string>& roots);

// `path` with `.` and `..` applied by its spelling alone, without a
// trailing '/' (but "/" stays "/").
std::string LexicallyNormalPath(const std::string& path);

// `roots` as this host sees them: each with its symlinks resolved where it
// exists here, as given where it does not (it then holds nothing).
std::vector<std::string> CanonicalRoots(const std::vector<std::string>& roots);

// Confines `path` (absolute) to `roots` on this host's file system: its
// existing part with symlinks resolved, and the rest with `..` applied,
// must lie under one of CanonicalRoots(roots). PERMISSION_DENIED naming
// `field` when it does not, INVALID_ARGUMENT when it cannot be resolved.
absl::Status CheckUnderRootsOnThisHost(const std::string& field, const std::string& path,
                                       const std::vector<std::string>& roots);

// Maps an errno value from a file operation to a status code.
absl::StatusCode ErrnoToCode(int err);

}  // namespace retrain
