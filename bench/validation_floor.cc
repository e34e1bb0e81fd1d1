// retrain-bench-validate: the validation floor for a dataset build.
//
//   retrain-bench-validate [--processes N] SRC_DIR [SRC_DIR...]
//
// The least work that proves every image under the directories good, on
// every core: each JPEG's scans entropy-decoded by libjpeg-turbo
// (jpeg_read_coefficients: every bit of compressed data read, no inverse
// DCT, no colour conversion), each other image decoded and re-encoded as a
// JPEG by libvips (what any converter must do to store it in a record). No
// framing, hashing, output or RPC; files are read whole, each with one
// read. One process per core, each with one thread, taking the next file
// as it is free: threads of one process share libvips' and the allocator's
// locks and were measured about 10 % slower. Not retrain's code: a build
// that validates every image cannot do less. Prints one JSON line:
//   {"files":N,"jpegs":J,"others":O,"bad":B,"bytes":B,"processes":P,
//    "seconds":S,"files_per_s":F}
// `bad` counts files that fail (a floor run expects none).

// clang-format off
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>  // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>
// clang-format on
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csetjmp>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>
#include <vector>
#include <vips/vips8>

#include "common/system_memory.h"

namespace fs = std::filesystem;

namespace {

struct JpegError {
  jpeg_error_mgr pub;  // first, so that cinfo->err can be cast back
  std::jmp_buf jump;
};

[[noreturn]] void OnJpegError(j_common_ptr cinfo) {
  std::longjmp(reinterpret_cast<JpegError*>(cinfo->err)->jump, 1);
}

// Entropy-decodes every scan of a JPEG; false when libjpeg fails on it.
bool DecodeCoefficients(const std::string& bytes) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = OnJpegError;
  if (setjmp(err.jump) != 0) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  jpeg_read_header(&cinfo, TRUE);
  jpeg_read_coefficients(&cinfo);
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

// Decodes any image libvips reads and encodes it as a JPEG; false on failure.
bool Reencode(const std::string& bytes) {
  try {
    vips::VImage image = vips::VImage::new_from_buffer(
        bytes.data(), bytes.size(), "",
        vips::VImage::option()->set("access", VIPS_ACCESS_SEQUENTIAL)->set("fail", true));
    if (image.has_alpha()) image = image.flatten();
    image = image.colourspace(VIPS_INTERPRETATION_sRGB);
    void* jpeg = nullptr;
    size_t size = 0;
    image.write_to_buffer(".jpg", &jpeg, &size, vips::VImage::option()->set("Q", 95));
    g_free(jpeg);
    return size > 0;
  } catch (const vips::VError&) {
    return false;
  }
}

bool IsJpeg(const std::string& bytes) {
  return bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
         static_cast<unsigned char>(bytes[1]) == 0xD8 &&
         static_cast<unsigned char>(bytes[2]) == 0xFF;
}

// The whole file in one buffer of its size, read with as few calls as the
// kernel allows; empty when it cannot be read (counted as bad).
std::string ReadWhole(const fs::path& path) {
  std::string data;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return data;
  struct stat st;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    data.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::read(fd, data.data() + done, data.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    data.resize(done);
  }
  ::close(fd);
  return data;
}

// What the processes share: the next file to take, and the counts.
struct Shared {
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> jpegs{0}, others{0}, bad{0}, bytes{0};
};
static_assert(std::atomic<size_t>::is_always_lock_free &&
                  std::atomic<uint64_t>::is_always_lock_free,
              "the counters live in memory shared between processes");

// One process's share: files taken one at a time until none is left.
void ValidateFiles(const std::vector<fs::path>& files, Shared* shared) {
  for (size_t i = shared->next++; i < files.size(); i = shared->next++) {
    const std::string data = ReadWhole(files[i]);
    shared->bytes += data.size();
    const bool jpeg = IsJpeg(data);
    (jpeg ? shared->jpegs : shared->others)++;
    if (!(jpeg ? DecodeCoefficients(data) : Reencode(data))) shared->bad++;
  }
}

// A child process that validates its share of `files`; its pid, or -1.
pid_t StartValidator(const char* argv0, const std::vector<fs::path>& files, Shared* shared) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // libvips starts in the child: its threads and locks are its own.
  if (VIPS_INIT(argv0) != 0) _exit(1);
  vips_concurrency_set(1);  // the processes are the parallelism
  vips_cache_set_max(0);
  // As retrain-worker does: no page faults per file for memory the last
  // file already had.
  retrain::KeepFreedMemoryForReuse(retrain::kRecordsHeapReuse);
  ValidateFiles(files, shared);
  _exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> srcs;
  int processes = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  CLI::App app{
      "Validate every image under directories as cheaply as possible: the floor for "
      "a dataset build's validation"};
  app.add_option("--processes", processes, "processes, one thread each (default: one per core)")
      ->check(CLI::Range(1, 256));
  app.add_option("src_dir", srcs, "directories to read (recursively)")->required();
  CLI11_PARSE(app, argc, argv);

  const auto start = std::chrono::steady_clock::now();
  std::vector<fs::path> files;
  for (const auto& src : srcs) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(src, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      if (it->is_regular_file(ec)) files.push_back(it->path());
    }
    if (ec) {
      std::fprintf(stderr, "retrain-bench-validate: cannot list %s: %s\n", src.c_str(),
                   ec.message().c_str());
      return 1;
    }
  }
  void* memory =
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    std::perror("retrain-bench-validate: mmap");
    return 1;
  }
  Shared* shared = new (memory) Shared();
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = StartValidator(argv[0], files, shared);
    if (pid < 0) {
      std::perror("retrain-bench-validate: fork");
      return 1;
    }
    children.push_back(pid);
  }
  bool failed = false;
  for (const pid_t pid : children) {
    int status = 0;
    failed |= ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  }
  if (failed) {
    std::fprintf(stderr, "retrain-bench-validate: a validating process failed (libvips start?)\n");
    return 1;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "{\"files\":%zu,\"jpegs\":%llu,\"others\":%llu,\"bad\":%llu,\"bytes\":%llu,"
      "\"processes\":%d,\"seconds\":%.6f,\"files_per_s\":%.1f}\n",
      files.size(), static_cast<unsigned long long>(shared->jpegs.load()),
      static_cast<unsigned long long>(shared->others.load()),
      static_cast<unsigned long long>(shared->bad.load()),
      static_cast<unsigned long long>(shared->bytes.load()), processes, secs,
      static_cast<double>(files.size()) / secs);
  return 0;
}
