#include "tests/support/test_images.h"

// clang-format off
#include <cstdio>  // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>
// clang-format on
#include <algorithm>
#include <array>
#include <cmath>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vips/vips8>

namespace retrain::test_images {
namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "test_images: %s\n", what.c_str());
  std::abort();
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint8_t Clamp8(double v) { return static_cast<uint8_t>(std::clamp(v, 0.0, 255.0) + 0.5); }

void EnsureVips() {
  static const bool ok = VIPS_INIT("retrain_test_images") == 0;
  if (!ok) Die(std::string("VIPS_INIT failed: ") + vips_error_buffer());
}

// --- libjpeg ---------------------------------------------------------------

void JpegErrorExit(j_common_ptr cinfo) {
  char message[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, message);
  Die(std::string("libjpeg: ") + message);
}

enum class JpegKind { kBaseline, kGray, kCmyk, kRgb, kProgressive, kArithmetic };

// `pixels` holds `components` bytes per pixel, in `in_space`.
std::string EncodeJpeg(const std::string& pixels, int w, int h, int components,
                       J_COLOR_SPACE in_space, JpegKind kind, int quality,
                       std::string_view icc_profile = {}) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  err.error_exit = JpegErrorExit;
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = w;
  cinfo.image_height = h;
  cinfo.input_components = components;
  cinfo.in_color_space = in_space;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  switch (kind) {
    case JpegKind::kBaseline:
    case JpegKind::kGray:
      break;
    case JpegKind::kCmyk:
      jpeg_set_colorspace(&cinfo, JCS_CMYK);  // also writes the Adobe marker
      break;
    case JpegKind::kRgb:
      jpeg_set_colorspace(&cinfo, JCS_RGB);  // Adobe marker with transform 0
      break;
    case JpegKind::kProgressive:
      jpeg_simple_progression(&cinfo);
      break;
    case JpegKind::kArithmetic:
      cinfo.arith_code = TRUE;
      break;
  }
  jpeg_start_compress(&cinfo, TRUE);
  if (!icc_profile.empty()) {
    jpeg_write_icc_profile(&cinfo, reinterpret_cast<const JOCTET*>(icc_profile.data()),
                           static_cast<unsigned>(icc_profile.size()));
  }
  const size_t stride = static_cast<size_t>(w) * components;
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row =
        reinterpret_cast<JSAMPROW>(const_cast<char*>(pixels.data() + cinfo.next_scanline * stride));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string out(reinterpret_cast<const char*>(buffer), size);
  std::free(buffer);
  return out;
}

struct JumpingErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
};

void JumpOnError(j_common_ptr cinfo) {
  std::longjmp(reinterpret_cast<JumpingErrorManager*>(cinfo->err)->jump, 1);
}

void JumpOnWarning(j_common_ptr cinfo, int level) {
  if (level < 0) JumpOnError(cinfo);
}

std::string RgbToGray(const std::string& rgb) {
  std::string gray(rgb.size() / 3, '\0');
  for (size_t i = 0; i < gray.size(); ++i) {
    const auto* p = reinterpret_cast<const unsigned char*>(rgb.data()) + 3 * i;
    gray[i] = static_cast<char>(Clamp8(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]));
  }
  return gray;
}

// Naive RGB -> CMYK, stored Adobe-inverted (255 - ink).
std::string RgbToInvertedCmyk(const std::string& rgb) {
  const size_t n = rgb.size() / 3;
  std::string cmyk(n * 4, '\0');
  for (size_t i = 0; i < n; ++i) {
    const auto* p = reinterpret_cast<const unsigned char*>(rgb.data()) + 3 * i;
    const int k = 255 - std::max({p[0], p[1], p[2]});
    const double scale = k == 255 ? 0.0 : 255.0 / (255 - k);
    const int c = static_cast<int>((255 - p[0] - k) * scale);
    const int m = static_cast<int>((255 - p[1] - k) * scale);
    const int y = static_cast<int>((255 - p[2] - k) * scale);
    cmyk[4 * i + 0] = static_cast<char>(255 - c);
    cmyk[4 * i + 1] = static_cast<char>(255 - m);
    cmyk[4 * i + 2] = static_cast<char>(255 - y);
    cmyk[4 * i + 3] = static_cast<char>(255 - k);
  }
  return cmyk;
}

// "Exif\0\0" + a little-endian TIFF structure with one IFD0 entry.
std::string ExifOrientationSegment(int orientation) {
  std::string s("Exif\0\0", 6);
  const unsigned char tiff[] = {
      'I',
      'I',
      0x2A,
      0x00,
      0x08,
      0x00,
      0x00,
      0x00,  // header, IFD0 at 8
      0x01,
      0x00,  // 1 entry
      0x12,
      0x01,
      0x03,
      0x00,  // tag 0x0112 Orientation, SHORT
      0x01,
      0x00,
      0x00,
      0x00,  // count 1
      static_cast<unsigned char>(orientation),
      0x00,
      0x00,
      0x00,  // value, padded
      0x00,
      0x00,
      0x00,
      0x00,  // no next IFD
  };
  s.append(reinterpret_cast<const char*>(tiff), sizeof(tiff));
  return s;
}

// --- libvips -----------------------------------------------------------------

vips::VImage RgbImage(const std::string& pixels, int w, int h, int bands = 3) {
  EnsureVips();
  return vips::VImage::new_from_memory(const_cast<char*>(pixels.data()), pixels.size(), w, h, bands,
                                       VIPS_FORMAT_UCHAR);
}

std::string BlobToString(VipsBlob* blob) {
  size_t size = 0;
  const void* data = vips_blob_get(blob, &size);
  std::string out(static_cast<const char*>(data), size);
  vips_area_unref(VIPS_AREA(blob));
  return out;
}

template <typename Fn>
std::string WithVips(const char* what, Fn fn) {
  try {
    return fn();
  } catch (const vips::VError& e) {
    Die(std::string(what) + ": " + e.what());
  }
}

// --- PNG chunks ----------------------------------------------------------------

uint32_t Crc32(std::string_view data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void AppendBe32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

void AppendLe(std::string* out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

void AppendChunk(std::string* out, std::string_view type, std::string_view data) {
  AppendBe32(out, static_cast<uint32_t>(data.size()));
  std::string body(type);
  body.append(data);
  out->append(body);
  AppendBe32(out, Crc32(body));
}

}  // namespace

std::string MakePhotoPixels(int w, int h, uint64_t seed) {
  std::string pixels(static_cast<size_t>(w) * h * 3, '\0');
  // A few soft blobs whose centres and colours depend on the seed.
  struct Blob {
    double x, y, r, rgb[3];
  };
  Blob blobs[4];
  uint64_t state = SplitMix64(seed);
  auto next = [&state]() {
    state = SplitMix64(state);
    return static_cast<double>(state >> 11) / static_cast<double>(1ull << 53);
  };
  for (Blob& b : blobs) {
    b.x = next() * w;
    b.y = next() * h;
    b.r = (0.1 + 0.3 * next()) * std::max(w, h);
    for (double& c : b.rgb) c = next() * 255;
  }
  const double phase = next() * 6.28;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      double rgb[3] = {
          255.0 * x / std::max(1, w - 1),
          255.0 * y / std::max(1, h - 1),
          128 + 90 * std::sin((x + y) / 23.0 + phase),
      };
      for (const Blob& b : blobs) {
        const double d2 = ((x - b.x) * (x - b.x) + (y - b.y) * (y - b.y)) / (b.r * b.r);
        const double weight = std::exp(-d2);
        for (int c = 0; c < 3; ++c) rgb[c] = rgb[c] * (1 - weight) + b.rgb[c] * weight;
      }
      const uint64_t noise = SplitMix64(seed * 0x100000001B3ull ^ (uint64_t(y) << 32 | x));
      for (int c = 0; c < 3; ++c) {
        const double n = static_cast<int>((noise >> (8 * c)) & 0x1F) - 16;  // -16..15
        pixels[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<char>(Clamp8(rgb[c] + n));
      }
    }
  }
  return pixels;
}

std::string MakeJpeg(int w, int h, int quality, uint64_t seed) {
  return EncodeJpeg(MakePhotoPixels(w, h, seed), w, h, 3, JCS_RGB, JpegKind::kBaseline, quality);
}

std::string MakeGrayJpeg(int w, int h, int quality, uint64_t seed) {
  return EncodeJpeg(RgbToGray(MakePhotoPixels(w, h, seed)), w, h, 1, JCS_GRAYSCALE, JpegKind::kGray,
                    quality);
}

std::string MakeCmykJpeg(int w, int h, int quality, uint64_t seed) {
  return EncodeJpeg(RgbToInvertedCmyk(MakePhotoPixels(w, h, seed)), w, h, 4, JCS_CMYK,
                    JpegKind::kCmyk, quality);
}

std::string MakeUniformCmykJpeg(int w, int h, uint8_t c, uint8_t m, uint8_t y, uint8_t k,
                                int quality, bool embed_profile) {
  std::string pixels;
  pixels.reserve(static_cast<size_t>(w) * h * 4);
  for (size_t i = 0; i < static_cast<size_t>(w) * h; ++i) {
    for (uint8_t ink : {c, m, y, k}) pixels.push_back(static_cast<char>(255 - ink));
  }
  std::string profile;
  if (embed_profile) {
    profile = WithVips("MakeUniformCmykJpeg", [] {
      EnsureVips();
      return BlobToString(vips::VImage::profile_load("cmyk"));
    });
  }
  return EncodeJpeg(pixels, w, h, 4, JCS_CMYK, JpegKind::kCmyk, quality, profile);
}

std::string MakeRgbJpeg(int w, int h, int quality, uint64_t seed) {
  return EncodeJpeg(MakePhotoPixels(w, h, seed), w, h, 3, JCS_RGB, JpegKind::kRgb, quality);
}

std::string MakeProgressiveJpeg(int w, int h, int quality, uint64_t seed) {
  return EncodeJpeg(MakePhotoPixels(w, h, seed), w, h, 3, JCS_RGB, JpegKind::kProgressive, quality);
}

std::string MakeArithmeticJpeg(int w, int h, int quality, uint64_t seed) {
  return EncodeJpeg(MakePhotoPixels(w, h, seed), w, h, 3, JCS_RGB, JpegKind::kArithmetic, quality);
}

std::string MakeExifJpeg(int w, int h, int orientation, int quality, uint64_t seed) {
  return InsertExifOrientation(MakeJpeg(w, h, quality, seed), orientation);
}

std::string InsertExifOrientation(std::string_view jpeg, int orientation) {
  const std::string payload = ExifOrientationSegment(orientation);
  std::string segment = "\xFF\xE1";
  const size_t length = payload.size() + 2;  // the length counts itself
  segment.push_back(static_cast<char>(length >> 8));
  segment.push_back(static_cast<char>(length & 0xFF));
  segment += payload;
  std::string out(jpeg.substr(0, 2));  // SOI
  out += segment;
  out.append(jpeg.substr(2));
  return out;
}

JpegInfo ReadJpegInfo(std::string_view jpeg) {
  JpegInfo info;
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof(cinfo));
  JumpingErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = JumpOnError;
  if (setjmp(err.jump) != 0) {
    jpeg_destroy_decompress(&cinfo);
    return JpegInfo();
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(jpeg.data()), jpeg.size());
  jpeg_read_header(&cinfo, TRUE);
  info.ok = true;
  info.width = static_cast<int>(cinfo.image_width);
  info.height = static_cast<int>(cinfo.image_height);
  info.components = cinfo.num_components;
  info.ycbcr = cinfo.jpeg_color_space == JCS_YCbCr;
  info.progressive = cinfo.progressive_mode != 0;
  info.arithmetic = cinfo.arith_code != 0;
  info.precision = cinfo.data_precision;
  jpeg_destroy_decompress(&cinfo);
  return info;
}

std::string DecodeJpegToRgb(std::string_view jpeg, int* width, int* height) {
  // Declared before setjmp() so that longjmp() skips no destructor.
  std::string out;
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof(cinfo));
  JumpingErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = JumpOnError;
  err.pub.emit_message = JumpOnWarning;
  if (setjmp(err.jump) != 0) {
    jpeg_destroy_decompress(&cinfo);
    return std::string();
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(jpeg.data()), jpeg.size());
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const size_t stride = static_cast<size_t>(cinfo.output_width) * 3;
  out.resize(stride * cinfo.output_height);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = reinterpret_cast<JSAMPROW>(&out[cinfo.output_scanline * stride]);
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  *width = static_cast<int>(cinfo.output_width);
  *height = static_cast<int>(cinfo.output_height);
  jpeg_destroy_decompress(&cinfo);
  return out;
}

size_t JpegScanDataOffset(std::string_view jpeg) {
  size_t i = 2;  // after SOI
  while (i + 4 <= jpeg.size()) {
    if (static_cast<unsigned char>(jpeg[i]) != 0xFF) return 0;
    const unsigned char marker = static_cast<unsigned char>(jpeg[i + 1]);
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    const size_t length =
        (static_cast<unsigned char>(jpeg[i + 2]) << 8) | static_cast<unsigned char>(jpeg[i + 3]);
    if (marker == 0xDA) return i + 2 + length <= jpeg.size() ? i + 2 + length : 0;
    i += 2 + length;
  }
  return 0;
}

size_t JpegScanDataMiddle(std::string_view jpeg) {
  const size_t scan = JpegScanDataOffset(jpeg);
  return scan == 0 ? 0 : scan + (jpeg.size() - scan) / 2;
}

std::string MakePng(int w, int h, uint64_t seed) {
  const std::string pixels = MakePhotoPixels(w, h, seed);
  return WithVips("MakePng", [&] { return BlobToString(RgbImage(pixels, w, h).pngsave_buffer()); });
}

std::string MakePngRgba(int w, int h, uint64_t seed) {
  const std::string rgb = MakePhotoPixels(w, h, seed);
  std::string rgba;
  rgba.reserve(static_cast<size_t>(w) * h * 4);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      rgba.append(rgb, (static_cast<size_t>(y) * w + x) * 3, 3);
      rgba.push_back(static_cast<char>(255 - 255 * x / std::max(1, w - 1)));
    }
  }
  return WithVips("MakePngRgba", [&] {
    vips::VImage image =
        RgbImage(rgba, w, h, 4)
            .copy(vips::VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB));
    return BlobToString(image.pngsave_buffer());
  });
}

std::string MakePng16(int w, int h, uint64_t seed) {
  const std::string rgb = MakePhotoPixels(w, h, seed);
  std::vector<uint16_t> wide(rgb.size());
  for (size_t i = 0; i < rgb.size(); ++i) {
    wide[i] = static_cast<uint16_t>(static_cast<unsigned char>(rgb[i]) * 257);
  }
  return WithVips("MakePng16", [&] {
    EnsureVips();
    vips::VImage image =
        vips::VImage::new_from_memory(wide.data(), wide.size() * 2, w, h, 3, VIPS_FORMAT_USHORT)
            .copy(vips::VImage::option()->set("interpretation", VIPS_INTERPRETATION_RGB16));
    return BlobToString(image.pngsave_buffer(vips::VImage::option()->set("bitdepth", 16)));
  });
}

std::string MakeGrayPng(int w, int h, uint64_t seed) {
  const std::string gray = RgbToGray(MakePhotoPixels(w, h, seed));
  return WithVips("MakeGrayPng", [&] {
    vips::VImage image =
        RgbImage(gray, w, h, 1)
            .copy(vips::VImage::option()->set("interpretation", VIPS_INTERPRETATION_B_W));
    return BlobToString(image.pngsave_buffer());
  });
}

std::string MakeGif(int w, int h, uint64_t seed) {
  const std::string pixels = MakePhotoPixels(w, h, seed);
  return WithVips("MakeGif", [&] { return BlobToString(RgbImage(pixels, w, h).gifsave_buffer()); });
}

std::string MakeWebp(int w, int h, uint64_t seed) {
  const std::string pixels = MakePhotoPixels(w, h, seed);
  return WithVips("MakeWebp",
                  [&] { return BlobToString(RgbImage(pixels, w, h).webpsave_buffer()); });
}

std::string MakeTiff(int w, int h, uint64_t seed) {
  const std::string pixels = MakePhotoPixels(w, h, seed);
  return WithVips("MakeTiff",
                  [&] { return BlobToString(RgbImage(pixels, w, h).tiffsave_buffer()); });
}

namespace {

// Runs a libvips saver that may be missing; empty on any failure.
template <typename Fn>
std::string TryVipsSave(Fn fn) {
  EnsureVips();
  try {
    return fn();
  } catch (const vips::VError&) {
    vips_error_clear();
    return std::string();
  }
}

}  // namespace

std::string MakeHeic(int w, int h, uint64_t seed) {
  const std::string pixels = MakePhotoPixels(w, h, seed);
  return TryVipsSave([&] {
    return BlobToString(RgbImage(pixels, w, h)
                            .heifsave_buffer(vips::VImage::option()->set(
                                "compression", VIPS_FOREIGN_HEIF_COMPRESSION_HEVC)));
  });
}

std::string MakeAvif(int w, int h, uint64_t seed) {
  const std::string pixels = MakePhotoPixels(w, h, seed);
  return TryVipsSave([&] {
    return BlobToString(RgbImage(pixels, w, h)
                            .heifsave_buffer(vips::VImage::option()->set(
                                "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1)));
  });
}

std::string MakeJpegXl(int w, int h, uint64_t seed) {
  const std::string pixels = MakePhotoPixels(w, h, seed);
  return TryVipsSave([&] { return BlobToString(RgbImage(pixels, w, h).jxlsave_buffer()); });
}

std::string MakeJpeg2000(int w, int h, uint64_t seed) {
  const std::string pixels = MakePhotoPixels(w, h, seed);
  return TryVipsSave([&] { return BlobToString(RgbImage(pixels, w, h).jp2ksave_buffer()); });
}

std::string MakeBmp(int w, int h, uint64_t seed) {
  const std::string rgb = MakePhotoPixels(w, h, seed);
  const uint32_t stride = (static_cast<uint32_t>(w) * 3 + 3) & ~3u;
  const uint32_t data_size = stride * static_cast<uint32_t>(h);
  std::string out = "BM";
  AppendLe(&out, 54 + data_size, 4);  // file size
  AppendLe(&out, 0, 4);               // reserved
  AppendLe(&out, 54, 4);              // pixel data offset
  AppendLe(&out, 40, 4);              // BITMAPINFOHEADER
  AppendLe(&out, static_cast<uint32_t>(w), 4);
  AppendLe(&out, static_cast<uint32_t>(h), 4);  // positive: bottom-up
  AppendLe(&out, 1, 2);                         // planes
  AppendLe(&out, 24, 2);                        // bits per pixel
  AppendLe(&out, 0, 4);                         // BI_RGB
  AppendLe(&out, data_size, 4);
  AppendLe(&out, 2835, 4);  // 72 dpi
  AppendLe(&out, 2835, 4);
  AppendLe(&out, 0, 4);  // palette size
  AppendLe(&out, 0, 4);  // important colours
  for (int y = h - 1; y >= 0; --y) {
    for (int x = 0; x < w; ++x) {
      const size_t i = (static_cast<size_t>(y) * w + x) * 3;
      out.push_back(rgb[i + 2]);
      out.push_back(rgb[i + 1]);
      out.push_back(rgb[i]);
    }
    out.append(stride - static_cast<uint32_t>(w) * 3, '\0');
  }
  return out;
}

std::string MakeHugePngHeader(uint32_t w, uint32_t h) {
  std::string out("\x89PNG\r\n\x1A\n", 8);
  std::string ihdr;
  AppendBe32(&ihdr, w);
  AppendBe32(&ihdr, h);
  ihdr.append({8, 2, 0, 0, 0});  // 8-bit, RGB, deflate, adaptive filter, no interlace
  AppendChunk(&out, "IHDR", ihdr);
  // zlib stream of one stored (uncompressed) block holding 16 zero bytes.
  std::string idat = {
      0x78, 0x01, 0x01, 0x10, 0x00, static_cast<char>(0xEF), static_cast<char>(0xFF)};
  idat.append(16, '\0');
  AppendBe32(&idat, 0x00100001);  // adler32 of 16 zero bytes
  AppendChunk(&out, "IDAT", idat);
  AppendChunk(&out, "IEND", "");
  return out;
}

std::string Truncate(std::string_view bytes, double keep_fraction) {
  const double f = std::clamp(keep_fraction, 0.0, 1.0);
  return std::string(bytes.substr(0, static_cast<size_t>(bytes.size() * f)));
}

std::string FlipBits(std::string_view bytes, const std::vector<size_t>& offsets, uint8_t mask) {
  std::string out(bytes);
  for (size_t offset : offsets) {
    if (offset < out.size()) out[offset] = static_cast<char>(out[offset] ^ mask);
  }
  return out;
}

void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) Die("cannot write " + path);
}

}  // namespace retrain::test_images
