// Image container formats, recognised from their leading bytes.
#pragma once

#include <string_view>

namespace retrain::image {

enum class ImageFormat {
  kUnknown,
  kJpeg,
  kPng,
  kGif,
  kWebp,
  kBmp,
  kTiff,
  kHeif,  // HEIC, HEIF and AVIF (ISO base media "ftyp" with an image brand)
  kJpegXl,
  kJpeg2000,
};

// The format of `bytes`, judged from magic numbers only (a file's name is
// never consulted). kUnknown for anything else, including empty input.
// Recognises: JPEG (FF D8 FF), PNG (89 'PNG' 0D 0A 1A 0A), GIF87a/GIF89a,
// RIFF....WEBP, BMP ("BM" followed by a plausible header), TIFF and BigTIFF
// (II*\0, MM\0*, II+\0, MM\0+), HEIF/AVIF (ftyp box naming heic, heix, hevc,
// mif1, msf1, avif, ...), JPEG XL (FF 0A codestream, or the 0000000C 'JXL '
// container) and JPEG 2000 (0000000C 'jP  ' container, or FF 4F FF 51
// codestream). Thread-safe; never reads past `bytes`.
ImageFormat DetectImageFormat(std::string_view bytes);

// Short lower-case name: "unknown", "jpeg", "png", "gif", "webp", "bmp",
// "tiff", "heif", "jpeg-xl", "jpeg2000". Never null.
const char* ImageFormatName(ImageFormat format);

}  // namespace retrain::image
