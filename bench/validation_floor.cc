// retrain-bench-validate: the validation floor for a dataset build.
//
//   retrain-bench-validate [--threads N] SRC_DIR [SRC_DIR...]
//
// The least work that proves every image under the directories good, on
// every core: each JPEG's scans entropy-decoded by libjpeg-turbo
// (jpeg_read_coefficients: every bit of compressed data read, no inverse
// DCT, no colour conversion), each other image decoded and re-encoded as a
// JPEG by libvips (what any converter must do to store it in a record). No
// framing, hashing, output or RPC; files are read whole. Not retrain's code:
// a build that validates every image cannot do less. Prints one JSON line:
//   {"files":N,"jpegs":J,"others":O,"bad":B,"bytes":B,"threads":T,
//    "seconds":S,"files_per_s":F}
// `bad` counts files that fail (a floor run expects none).

// clang-format off
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
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <thread>
#include <vector>
#include <vips/vips8>

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

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> srcs;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  CLI::App app{
      "Validate every image under directories as cheaply as possible: the floor for "
      "a dataset build's validation"};
  app.add_option("--threads", threads, "threads (default: one per core)")
      ->check(CLI::Range(1, 256));
  app.add_option("src_dir", srcs, "directories to read (recursively)")->required();
  CLI11_PARSE(app, argc, argv);
  if (VIPS_INIT(argv[0]) != 0) {
    std::fprintf(stderr, "retrain-bench-validate: cannot start libvips\n");
    return 1;
  }
  vips_concurrency_set(1);  // the threads here are the parallelism
  vips_cache_set_max(0);

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
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> jpegs{0}, others{0}, bad{0}, bytes{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < files.size(); i = next++) {
        std::ifstream in(files[i], std::ios::binary);
        const std::string data{std::istreambuf_iterator<char>(in),
                               std::istreambuf_iterator<char>()};
        bytes += data.size();
        const bool jpeg = IsJpeg(data);
        (jpeg ? jpegs : others)++;
        if (!(jpeg ? DecodeCoefficients(data) : Reencode(data))) bad++;
      }
      vips_thread_shutdown();
    });
  }
  for (auto& t : pool) t.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "{\"files\":%zu,\"jpegs\":%llu,\"others\":%llu,\"bad\":%llu,\"bytes\":%llu,\"threads\":%d,"
      "\"seconds\":%.6f,\"files_per_s\":%.1f}\n",
      files.size(), static_cast<unsigned long long>(jpegs.load()),
      static_cast<unsigned long long>(others.load()), static_cast<unsigned long long>(bad.load()),
      static_cast<unsigned long long>(bytes.load()), threads, secs,
      static_cast<double>(files.size()) / secs);
  return 0;
}
