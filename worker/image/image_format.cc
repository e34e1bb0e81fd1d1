#include "worker/image/image_format.h"

#include <algorithm>
#include <cstdint>

namespace retrain::image {
namespace {

bool StartsWith(std::string_view bytes, std::string_view prefix) {
  return bytes.size() >= prefix.size() && bytes.substr(0, prefix.size()) == prefix;
}

uint32_t ReadBe32(std::string_view bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + offset;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

uint32_t ReadLe32(std::string_view bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + offset;
  return (uint32_t{p[3]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | p[0];
}

// Brands of the HEIF family (ISO/IEC 23008-12) and AVIF.
bool IsHeifBrand(std::string_view brand) {
  static constexpr std::string_view kBrands[] = {
      "heic", "heix", "hevc", "hevx", "heim", "heis", "hevm",
      "hevs", "mif1", "msf1", "avif", "avis", "mif2", "miaf",
  };
  for (std::string_view b : kBrands) {
    if (brand == b) return true;
  }
  return false;
}

// An ISO BMFF file starts with a "ftyp" box: size, "ftyp", major brand,
// minor version, compatible brands. Video files (mp4, mov) share the box,
// so one of the brands must be an image brand.
bool IsHeif(std::string_view bytes) {
  if (bytes.size() < 12 || bytes.substr(4, 4) != "ftyp") return false;
  if (IsHeifBrand(bytes.substr(8, 4))) return true;
  const size_t box_size = ReadBe32(bytes, 0);
  const size_t end = std::min(bytes.size(), box_size);
  for (size_t offset = 16; offset + 4 <= end; offset += 4) {
    if (IsHeifBrand(bytes.substr(offset, 4))) return true;
  }
  return false;
}

// "BM", then (when present) a DIB header size that some BMP variant uses,
// so that a text file starting with "BM" is not taken for an image. A file
// too short to hold the header is still called BMP, so that probing can
// report it as truncated.
bool IsBmp(std::string_view bytes) {
  if (!StartsWith(bytes, "BM")) return false;
  if (bytes.size() < 18) return true;
  switch (ReadLe32(bytes, 14)) {
    case 12:   // BITMAPCOREHEADER (OS/2 1.x)
    case 16:   // OS/2 2.x, short form
    case 40:   // BITMAPINFOHEADER
    case 52:   // BITMAPV2INFOHEADER
    case 56:   // BITMAPV3INFOHEADER
    case 64:   // OS/2 2.x
    case 108:  // BITMAPV4HEADER
    case 124:  // BITMAPV5HEADER
      return true;
    default:
      return false;
  }
}

}  // namespace

ImageFormat DetectImageFormat(std::string_view bytes) {
  using namespace std::string_view_literals;
  if (StartsWith(bytes, "\xFF\xD8\xFF"sv)) return ImageFormat::kJpeg;
  if (StartsWith(bytes, "\x89PNG\r\n\x1A\n"sv)) return ImageFormat::kPng;
  if (StartsWith(bytes, "GIF87a"sv) || StartsWith(bytes, "GIF89a"sv)) return ImageFormat::kGif;
  if (bytes.size() >= 12 && StartsWith(bytes, "RIFF"sv) && bytes.substr(8, 4) == "WEBP"sv) {
    return ImageFormat::kWebp;
  }
  if (StartsWith(bytes, "II*\0"sv) || StartsWith(bytes, "MM\0*"sv) ||
      StartsWith(bytes, "II+\0"sv) || StartsWith(bytes, "MM\0+"sv)) {
    return ImageFormat::kTiff;
  }
  if (StartsWith(bytes, "\xFF\x0A"sv) ||
      StartsWith(bytes, "\x00\x00\x00\x0CJXL \x0D\x0A\x87\x0A"sv)) {
    return ImageFormat::kJpegXl;
  }
  if (StartsWith(bytes, "\x00\x00\x00\x0CjP  \x0D\x0A\x87\x0A"sv) ||
      StartsWith(bytes, "\xFF\x4F\xFF\x51"sv)) {
    return ImageFormat::kJpeg2000;
  }
  if (IsHeif(bytes)) return ImageFormat::kHeif;
  if (IsBmp(bytes)) return ImageFormat::kBmp;
  return ImageFormat::kUnknown;
}

const char* ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kUnknown:
      return "unknown";
    case ImageFormat::kJpeg:
      return "jpeg";
    case ImageFormat::kPng:
      return "png";
    case ImageFormat::kGif:
      return "gif";
    case ImageFormat::kWebp:
      return "webp";
    case ImageFormat::kBmp:
      return "bmp";
    case ImageFormat::kTiff:
      return "tiff";
    case ImageFormat::kHeif:
      return "heif";
    case ImageFormat::kJpegXl:
      return "jpeg-xl";
    case ImageFormat::kJpeg2000:
      return "jpeg2000";
  }
  return "unknown";
}

}  // namespace retrain::image
