#include "common/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace retrain {

absl::StatusOr<std::vector<DirectoryEntry>> ListDirectorySorted(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    const int err = errno;
    return absl::Status(ErrnoToCode(err), absl::StrCat(dir, ": cannot list: ", std::strerror(err)));
  }
  std::vector<DirectoryEntry> entries;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    entries.push_back({std::move(name), e->d_type == DT_REG});
  }
  ::closedir(d);
  std::sort(entries.begin(), entries.end(),
            [](const DirectoryEntry& a, const DirectoryEntry& b) { return a.name < b.name; });
  return entries;
}

bool PathIsUnderAny(const std::string& path, const std::vector<std::string>& roots) {
  for (const auto& root : roots) {
    if (path == root) return true;
    if (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
        (root.back() == '/' || path[root.size()] == '/')) {
      return true;
    }
  }
  return false;
}

std::string LexicallyNormalPath(const std::string& path) {
  std::string s = std::filesystem::path(path).lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::vector<std::string> CanonicalRoots(const std::vector<std::string>& roots) {
  std::vector<std::string> canonical;
  for (const auto& root : roots) {
    std::error_code ec;
    const std::filesystem::path p = std::filesystem::canonical(root, ec);
    canonical.push_back(ec ? root : p.string());
  }
  return canonical;
}

absl::Status CheckUnderRootsOnThisHost(const std::string& field, const std::string& path,
                                       const std::vector<std::string>& roots) {
  std::error_code ec;
  const std::string resolved =
      LexicallyNormalPath(std::filesystem::weakly_canonical(path, ec).string());
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": cannot resolve '", path, "': ", ec.message()));
  }
  if (!PathIsUnderAny(resolved, CanonicalRoots(roots))) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, ": '", path, "' leads to '", resolved, "', outside the server's data roots (",
        absl::StrJoin(roots, ", "), "); a symlink may lead out of them"));
  }
  return absl::OkStatus();
}

absl::StatusCode ErrnoToCode(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::StatusCode::kNotFound;
    case EACCES:
    case EPERM:
      return absl::StatusCode::kPermissionDenied;
    case EISDIR:
    case ELOOP:
      return absl::StatusCode::kFailedPrecondition;
    case ENOSPC:
    case EDQUOT:
      return absl::StatusCode::kResourceExhausted;
    default:
      return absl::StatusCode::kUnknown;
  }
}

namespace {
absl::Status ErrnoStatus(const std::string& path, const char* op, int err) {
  return absl::Status(ErrnoToCode(err), absl::StrCat(path, ": ", op, ": ", std::strerror(err)));
}
}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(path, "cannot open", errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(path, "cannot stat", err);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return ErrnoStatus(path, "cannot read", EISDIR);
  }
  // The size fstat gave is read into a buffer of exactly that size; one
  // small read past it confirms the end (a file that grew is read on in
  // small steps). No reallocation for a file that did not change.
  std::string data(st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0, '\0');
  size_t done = 0;
  char tail[4096];
  while (true) {
    const bool full = done == data.size();
    char* into = full ? tail : data.data() + done;
    const size_t room = full ? sizeof(tail) : data.size() - done;
    const ssize_t n = ::read(fd, into, room);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return ErrnoStatus(path, "cannot read", err);
    }
    if (n == 0) break;
    if (full) data.append(tail, static_cast<size_t>(n));
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  data.resize(done);
  return data;
}

absl::Status SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(dir, "cannot open directory", errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(dir, "cannot fsync directory", err);
  return absl::OkStatus();
}

// Writes a file's bytes back in ranges of at least `every` bytes, on its own
// thread, as Append() reports them.
class AtomicFileWriter::WriteBehind {
 public:
  WriteBehind(int fd, int64_t every) : fd_(fd), every_(every), thread_([this] { Loop(); }) {}
  ~WriteBehind() { Stop(); }
  // `written` bytes are in the file now.
  void Appended(int64_t written) {
    if (written - notified_ < every_) return;
    notified_ = written;
    std::lock_guard<std::mutex> lock(mu_);
    requested_ = written;
    cv_.notify_one();
  }
  // Joins the thread; the errno of its first failed write-back, or 0.
  int Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
    return error_;
  }

 private:
  void Loop() {
    int64_t done = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || requested_ > done; });
      if (stop_) return;
      const int64_t upto = requested_;
      lock.unlock();
      const int rc = ::sync_file_range(
          fd_, done, upto - done,
          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      const int err = rc == 0 ? 0 : errno;
      lock.lock();
      if (err != 0 && error_ == 0) error_ = err;
      done = upto;
    }
  }

  const int fd_;
  const int64_t every_;
  int64_t notified_ = 0;   // Appended()'s thread only
  int64_t requested_ = 0;  // guarded by mu_, as the rest below
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int error_ = 0;
  std::thread thread_;
};

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {}

AtomicFileWriter::~AtomicFileWriter() {
  write_behind_.reset();
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

absl::Status AtomicFileWriter::Open() {
  std::filesystem::path p(path_);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  // Hidden name: never matches the train-*/validation-* globs readers use.
  temp_path_ = (p.parent_path() /
                absl::StrFormat(".%s.tmp-%016x", p.filename().string(), rng()))
                   .string();
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    int err = errno;
    temp_path_.clear();
    return ErrnoStatus(path_, "cannot create", err);
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Append(std::string_view data) {
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(path_, "cannot write", errno);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  bytes_written_ += static_cast<int64_t>(data.size());
  if (write_behind_) write_behind_->Appended(bytes_written_);
  return absl::OkStatus();
}

void AtomicFileWriter::StartWriteBehind(int64_t every_bytes) {
  if (fd_ >= 0 && !write_behind_) write_behind_ = std::make_unique<WriteBehind>(fd_, every_bytes);
}

absl::Status AtomicFileWriter::StopWriteBehind() {
  if (!write_behind_) return absl::OkStatus();
  const int err = write_behind_->Stop();
  write_behind_.reset();
  return err == 0 ? absl::OkStatus() : ErrnoStatus(path_, "cannot write back", err);
}

absl::Status AtomicFileWriter::Commit(Sync sync) {
  RETURN_IF_ERROR(StopWriteBehind());
  if (sync == Sync::kDurable && ::fsync(fd_) != 0) {
    return ErrnoStatus(path_, "cannot fsync", errno);
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    return ErrnoStatus(path_, "cannot close", errno);
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return ErrnoStatus(path_, "cannot rename into place", errno);
  }
  committed_ = true;
  if (sync == Sync::kDurable) {
    const std::string dir = std::filesystem::path(path_).parent_path().string();
    return SyncDirectory(dir.empty() ? "." : dir);
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents,
                                 AtomicFileWriter::Sync sync) {
  AtomicFileWriter writer(path);
  absl::Status s = writer.Open();
  if (s.ok()) s = writer.Append(contents);
  if (s.ok()) s = writer.Commit(sync);
  return s;
}

std::string EscapeNonUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool valid = len > 0 && i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k) {
      valid = (static_cast<uint8_t>(s[i + k]) & 0xc0) == 0x80;
    }
    if (valid && len == 2) valid = c >= 0xc2;  // no overlong forms
    if (valid) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += absl::StrFormat("\\x%02X", c);
      ++i;
    }
  }
  return out;
}

}  // namespace retrain
