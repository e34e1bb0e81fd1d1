// retrain-bench-copy: the floor for a dataset build.
//
//   retrain-bench-copy --out OUT_FILE SRC_DIR [SRC_DIR...]
//
// Reads every regular file under each SRC_DIR (recursively, in sorted path
// order) and appends its bytes to OUT_FILE, then fsyncs OUT_FILE. No decoding, no
// framing: any converter that reads the same files and writes one output
// cannot beat this on the same machine. Prints one JSON line:
//   {"files":N,"bytes":B,"seconds":S,"files_per_s":F,"mb_per_s":M}
// where MB = bytes / 1e6 and the time covers listing, reading, writing and
// the final fsync.

#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr size_t kBufferBytes = 1 << 20;

// Writes all of [data, data+size) to fd; false with errno set on failure.
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> srcs;
  std::string out;
  CLI::App app{"Copy every file under directories into one file: the floor for a dataset build"};
  app.add_option("--out", out, "file to write (truncated)")->required();
  app.add_option("src_dir", srcs, "directories to read (recursively)")->required();
  CLI11_PARSE(app, argc, argv);

  auto fail = [](const std::string& what) {
    std::fprintf(stderr, "retrain-bench-copy: %s\n", what.c_str());
    return 1;
  };

  const auto start = std::chrono::steady_clock::now();
  std::vector<fs::path> files;
  for (const auto& src : srcs) {
    std::vector<fs::path> found;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(src, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      if (it->is_regular_file(ec)) found.push_back(it->path());
    }
    if (ec) return fail("cannot list " + src + ": " + ec.message());
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }

  const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0) return fail("cannot open " + out + ": " + std::strerror(errno));

  std::vector<char> buffer(kBufferBytes);
  uint64_t bytes = 0;
  for (const auto& path : files) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail("cannot open " + path.string() + ": " + std::strerror(errno));
    for (;;) {
      const ssize_t n = ::read(fd, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail("cannot read " + path.string() + ": " + std::strerror(errno));
      if (n == 0) break;
      if (!WriteAll(out_fd, buffer.data(), static_cast<size_t>(n))) {
        return fail("cannot write " + out + ": " + std::strerror(errno));
      }
      bytes += static_cast<uint64_t>(n);
    }
    ::close(fd);
  }
  if (::fsync(out_fd) != 0) return fail("cannot fsync " + out + ": " + std::strerror(errno));
  if (::close(out_fd) != 0) return fail("cannot close " + out + ": " + std::strerror(errno));
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::printf(
      "{\"files\":%zu,\"bytes\":%llu,\"seconds\":%.6f,\"files_per_s\":%.1f,\"mb_per_s\":%.1f}\n",
      files.size(), static_cast<unsigned long long>(bytes), secs,
      static_cast<double>(files.size()) / secs, static_cast<double>(bytes) / 1e6 / secs);
  return 0;
}
