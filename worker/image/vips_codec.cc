#include "worker/image/vips_codec.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <vector>
#include <vips/vips8>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "worker/image/image_library.h"

namespace retrain::image::internal {
namespace {

using vips::VImage;

// Name of the libvips operation that loads `format` from a memory buffer.
const char* LoaderName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg:
      return "jpegload_buffer";
    case ImageFormat::kPng:
      return "pngload_buffer";
    case ImageFormat::kGif:
      return "gifload_buffer";
    case ImageFormat::kWebp:
      return "webpload_buffer";
    case ImageFormat::kTiff:
      return "tiffload_buffer";
    case ImageFormat::kHeif:
      return "heifload_buffer";
    case ImageFormat::kJpegXl:
      return "jxlload_buffer";
    case ImageFormat::kJpeg2000:
      return "jp2kload_buffer";
    case ImageFormat::kBmp:
      // libvips 8.14 has no BMP loader of its own; ImageMagick's reads it.
      return "magickload_buffer";
    case ImageFormat::kUnknown:
      break;
  }
  return nullptr;
}

uint32_t ReadLe16(std::string_view b, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data()) + at;
  return p[0] | (uint32_t{p[1]} << 8);
}
uint32_t ReadLe32(std::string_view b, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data()) + at;
  return p[0] | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}
uint32_t ReadBe32(std::string_view b, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data()) + at;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// True if the PNG chunk sequence stops before a complete IEND chunk. libvips
// reports truncated and corrupt PNGs with the same message ("libpng read
// error"), so this is what tells them apart.
bool PngEndsEarly(std::string_view bytes) {
  size_t offset = 8;
  while (offset + 8 <= bytes.size()) {
    const uint64_t length = ReadBe32(bytes, offset);
    if (length > 0x7FFFFFFF) return false;  // not a length: damage, not truncation
    const std::string_view type = bytes.substr(offset + 4, 4);
    if (offset + 12 + length > bytes.size()) return true;
    if (type == "IEND") return false;
    offset += 12 + length;
  }
  return true;
}

// What the BMP headers say. ImageMagick decodes the whole image when asked
// for its header, so the pixel limit has to be applied before calling it.
struct BmpHeader {
  bool valid = false;
  bool truncated = false;
  int64_t width = 0;
  int64_t height = 0;
};

BmpHeader ParseBmpHeader(std::string_view bytes) {
  BmpHeader header;
  if (bytes.size() < 26) {
    header.truncated = true;
    return header;
  }
  const uint32_t dib_size = ReadLe32(bytes, 14);
  const uint64_t pixel_offset = ReadLe32(bytes, 10);
  uint32_t bits = 0;
  uint32_t compression = 0;
  if (dib_size == 12) {  // BITMAPCOREHEADER: 16-bit dimensions
    header.width = ReadLe16(bytes, 18);
    header.height = ReadLe16(bytes, 20);
    bits = ReadLe16(bytes, 24);
  } else {
    if (bytes.size() < 34) {
      header.truncated = true;
      return header;
    }
    header.width = static_cast<int32_t>(ReadLe32(bytes, 18));
    header.height = std::abs(static_cast<int64_t>(static_cast<int32_t>(ReadLe32(bytes, 22))));
    bits = ReadLe16(bytes, 28);
    if (dib_size >= 20) compression = ReadLe32(bytes, 30);
  }
  if (header.width <= 0 || header.height <= 0) return header;
  header.valid = true;
  // Uncompressed layouts have a known size: rows padded to 4 bytes.
  const bool uncompressed = compression == 0 || compression == 3 || compression == 6;
  if (uncompressed && bits > 0 && bits <= 32) {
    const uint64_t stride = ((static_cast<uint64_t>(header.width) * bits + 31) / 32) * 4;
    header.truncated = bytes.size() < pixel_offset + stride * static_cast<uint64_t>(header.height);
  }
  return header;
}

// A libvips error message on one line, at most 300 characters (the end is
// kept: libvips appends, so the last lines are the newest).
std::string OneLine(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::string line;
  for (char c : text) {
    if (c == '\n') {
      line += "; ";
    } else {
      line += c;
    }
  }
  constexpr size_t kMaxDetail = 300;
  if (line.size() > kMaxDetail) line = "..." + line.substr(line.size() - kMaxDetail);
  return line;
}

bool SoundsTruncated(ImageFormat format, std::string_view message) {
  std::string lower(message);
  absl::AsciiStrToLower(&lower);
  for (const char* needle : {"truncated", "premature end", "unexpected end", "end of file",
                             "end of data", "not enough image data", "short read"}) {
    if (absl::StrContains(lower, needle)) return true;
  }
  // libtiff: "Read error on strip 3; got 100 bytes, expected 8192".
  return format == ImageFormat::kTiff &&
         (absl::StrContains(lower, "read error") || absl::StrContains(lower, "seek error"));
}

enum class EndsEarly { kYes, kNo, kCannotTell };

// Whether the container's own structure shows that the file stops early.
// Used to tell TRUNCATED from CORRUPT after a failed decode; the libvips
// error text is the fallback, since it is shared between threads.
EndsEarly CheckEndsEarly(ImageFormat format, std::string_view bytes) {
  switch (format) {
    case ImageFormat::kPng:
      return PngEndsEarly(bytes) ? EndsEarly::kYes : EndsEarly::kNo;
    case ImageFormat::kGif:
      // Every GIF ends with the trailer byte ';'.
      return bytes.back() != ';' ? EndsEarly::kYes : EndsEarly::kNo;
    case ImageFormat::kWebp:
      // The RIFF header holds the size of what follows it.
      return bytes.size() < 8 + uint64_t{ReadLe32(bytes, 4)} ? EndsEarly::kYes : EndsEarly::kNo;
    case ImageFormat::kTiff:
      if (bytes.size() >= 8 && bytes[0] == 'I' && bytes[2] == '*' &&
          ReadLe32(bytes, 4) >= bytes.size()) {
        return EndsEarly::kYes;  // the first directory lies past the end
      }
      if (bytes.size() >= 8 && bytes[0] == 'M' && bytes[3] == '*' &&
          ReadBe32(bytes, 4) >= bytes.size()) {
        return EndsEarly::kYes;
      }
      return EndsEarly::kCannotTell;
    default:
      return EndsEarly::kCannotTell;
  }
}

struct BlobUnref {
  void operator()(VipsBlob* blob) const { vips_area_unref(VIPS_AREA(blob)); }
};

VImage Load(const VipsRequest& request) {
  // The blob borrows request.bytes: no copy, nothing to free.
  std::unique_ptr<VipsBlob, BlobUnref> blob(
      vips_blob_new(nullptr, request.bytes.data(), request.bytes.size()));
  auto* options =
      VImage::option()->set("access", VIPS_ACCESS_SEQUENTIAL)->set("fail_on", VIPS_FAIL_ON_WARNING);
  VImage out;
  VImage::call(LoaderName(request.format), options->set("buffer", blob.get())->set("out", &out));
  return out;
}

// CMYK without an embedded ICC profile: the plain formula that libjpeg-turbo,
// TensorFlow's decode_jpeg and PIL use, R = (1 - C) * (1 - K) and so on.
// With no profile there is no colour intent to honour, and it is about ten
// times cheaper than libvips' ICC route through its built-in CMYK profile
// (~60 ms for 500x375, the lcms transform being built for each image).
VImage NaiveCmykToRgb(const VImage& cmyk) {
  const bool wide = cmyk.format() == VIPS_FORMAT_USHORT;
  const double max = wide ? 65535.0 : 255.0;
  VImage paper = max - cmyk.extract_band(0, VImage::option()->set("n", 4));
  VImage rgb = (paper.extract_band(0, VImage::option()->set("n", 3)) * paper[3] / max + 0.5)
                   .cast(cmyk.format());
  if (cmyk.bands() > 4) {
    rgb = rgb.bandjoin(cmyk.extract_band(4, VImage::option()->set("n", cmyk.bands() - 4)));
  }
  return rgb.copy(VImage::option()->set(
      "interpretation", wide ? VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_sRGB));
}

// 8-bit sRGB, 3 bands, rotated upright, alpha flattened onto white.
VImage ToStoredForm(VImage image, int orientation) {
  if (orientation != 1) {
    // Rotations and flips read the image out of order, which a sequential
    // loader cannot serve; decode it to memory first.
    image = image.copy_memory();
    image.set("orientation", orientation);
    image = image.autorot();
  }
  if (!vips_colourspace_issupported(image.get_image())) {
    image = image.copy(VImage::option()->set(
        "interpretation", image.bands() >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W));
  }
  if (image.interpretation() == VIPS_INTERPRETATION_CMYK && image.bands() >= 4 &&
      image.get_typeof(VIPS_META_ICC_NAME) == 0) {
    image = NaiveCmykToRgb(image);
  }
  // Everything else, CMYK with a profile included, the libvips way.
  image = image.colourspace(VIPS_INTERPRETATION_sRGB);
  if (image.has_alpha()) {
    const double max_alpha = image.format() == VIPS_FORMAT_USHORT ? 65535.0 : 255.0;
    image =
        image.flatten(VImage::option()
                          ->set("background", std::vector<double>{max_alpha, max_alpha, max_alpha})
                          ->set("max_alpha", max_alpha));
  }
  if (image.format() == VIPS_FORMAT_USHORT) {
    image = image / 257.0;
  }
  if (image.format() != VIPS_FORMAT_UCHAR) image = image.cast(VIPS_FORMAT_UCHAR);
  if (image.bands() > 3) {
    image = image.extract_band(0, VImage::option()->set("n", 3));
  } else if (image.bands() < 3) {
    VImage first = image.extract_band(0);
    image = first.bandjoin({first, first});
  }
  return image.copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB));
}

int OrientationOf(const VImage& image) {
  if (image.get_typeof("orientation") == 0) return 1;
  const int orientation = image.get_int("orientation");
  return orientation >= 1 && orientation <= 8 ? orientation : 1;
}

VipsResult Fail(retrain::v1::SkipReason reason, std::string detail) {
  VipsResult result;
  result.reason = reason;
  result.detail = std::move(detail);
  return result;
}

// The work, which may throw vips::VError.
VipsResult RunVipsOrThrow(const VipsRequest& request) {
  if (request.format == ImageFormat::kBmp) {
    const BmpHeader header = ParseBmpHeader(request.bytes);
    if (header.valid && header.width * header.height > request.max_pixels) {
      return Fail(
          retrain::v1::SKIP_REASON_TOO_MANY_PIXELS,
          absl::StrCat(header.width, "x", header.height, " is ", header.width * header.height,
                       " pixels, more than the limit of ", request.max_pixels));
    }
    if (header.truncated) {
      return Fail(retrain::v1::SKIP_REASON_TRUNCATED, "bmp: file ends before its pixel data");
    }
    if (!header.valid) return Fail(retrain::v1::SKIP_REASON_CORRUPT, "bmp: bad header");
  }

  // A PNG whose chunks stop before IEND may still hold every row, and
  // libvips would accept it; a truncated file is refused all the same.
  if (request.format == ImageFormat::kPng && PngEndsEarly(request.bytes)) {
    return Fail(retrain::v1::SKIP_REASON_TRUNCATED, "png: file ends before its IEND chunk");
  }

  VImage image = Load(request);
  const int64_t pixels = static_cast<int64_t>(image.width()) * image.height();
  if (pixels > request.max_pixels) {
    return Fail(retrain::v1::SKIP_REASON_TOO_MANY_PIXELS,
                absl::StrCat(image.width(), "x", image.height(), " is ", pixels,
                             " pixels, more than the limit of ", request.max_pixels));
  }
  VipsResult result;
  result.orientation =
      request.orientation_override != 0 ? request.orientation_override : OrientationOf(image);
  image = ToStoredForm(image, result.orientation);
  result.width = image.width();
  result.height = image.height();
  if (request.encode) {
    VipsBlob* blob = image.jpegsave_buffer(VImage::option()
                                               ->set("Q", request.jpeg_quality)
                                               ->set("interlace", false)
                                               ->set("optimize_coding", false)
                                               ->set("strip", true));
    std::unique_ptr<VipsBlob, BlobUnref> owned(blob);
    size_t size = 0;
    const void* data = vips_blob_get(blob, &size);
    result.jpeg.assign(static_cast<const char*>(data), size);
  } else {
    // Pulls every pixel through the loader and the conversions.
    (void)image.avg();
  }
  result.ok = true;
  return result;
}

}  // namespace

bool VipsCanLoad(ImageFormat format) {
  if (!InitImageLibrary(nullptr).ok()) return false;
  const char* loader = LoaderName(format);
  return loader != nullptr && vips_type_find("VipsOperation", loader) != 0;
}

VipsResult RunVips(const VipsRequest& request) {
  if (absl::Status init = InitImageLibrary(nullptr); !init.ok()) {
    return Fail(retrain::v1::SKIP_REASON_UNSUPPORTED, std::string(init.message()));
  }
  if (!VipsCanLoad(request.format)) {
    return Fail(retrain::v1::SKIP_REASON_UNSUPPORTED,
                absl::StrCat("this libvips cannot load ", ImageFormatName(request.format)));
  }
  try {
    return RunVipsOrThrow(request);
  } catch (const vips::VError& e) {
    // libvips keeps one error buffer per process, which VError copies but
    // does not clear. Under concurrency the text may also hold another
    // thread's message, or lose this one; the outcome (not ok) is always
    // this call's, and the container checks do not depend on the text.
    const std::string message = OneLine(e.what());
    vips_error_clear();
    bool truncated = false;
    switch (CheckEndsEarly(request.format, request.bytes)) {
      case EndsEarly::kYes:
        truncated = true;
        break;
      case EndsEarly::kNo:
        truncated = false;
        break;
      case EndsEarly::kCannotTell:
        truncated = SoundsTruncated(request.format, message);
        break;
    }
    return Fail(truncated ? retrain::v1::SKIP_REASON_TRUNCATED : retrain::v1::SKIP_REASON_CORRUPT,
                absl::StrCat(ImageFormatName(request.format), ": ", message));
  }
}

}  // namespace retrain::image::internal
