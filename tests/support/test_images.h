// Deterministic test images, generated in memory. For tests, integration
// tests and sample-data / benchmark tools; not for production code.
//
// Every function returns the encoded file's bytes. The same arguments always
// give the same bytes (on the same library versions). Pixels are
// "photo-like": smooth gradients, a few soft shapes and some noise, so that
// compressed sizes are realistic. Functions abort the program with a message
// on an internal failure (they cannot fail on valid arguments). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace retrain::test_images {

// Raw 8-bit RGB pixels, row by row (w * h * 3 bytes), as the encoders below
// use them.
std::string MakePhotoPixels(int w, int h, uint64_t seed = 1);

// --- JPEG, written with libjpeg-turbo -------------------------------------
// Baseline (sequential, Huffman), 3-component YCbCr 4:2:0 with a JFIF
// marker: the kind that is stored byte for byte.
std::string MakeJpeg(int w, int h, int quality = 90, uint64_t seed = 1);
// 1-component grayscale.
std::string MakeGrayJpeg(int w, int h, int quality = 90, uint64_t seed = 1);
// 4-component CMYK with an Adobe APP14 marker, samples stored inverted as
// Adobe software does (255 = no ink).
std::string MakeCmykJpeg(int w, int h, int quality = 90, uint64_t seed = 1);
// As MakeCmykJpeg, but every pixel has the given ink amounts (0 = no ink,
// 255 = full ink). All zero is a white image. `embed_profile` adds libvips'
// built-in CMYK ICC profile as APP2 ICC_PROFILE segments.
std::string MakeUniformCmykJpeg(int w, int h, uint8_t c, uint8_t m, uint8_t y, uint8_t k,
                                int quality = 90, bool embed_profile = false);
// 3-component JPEG stored as RGB (Adobe transform 0), not YCbCr.
std::string MakeRgbJpeg(int w, int h, int quality = 90, uint64_t seed = 1);
// Progressive (jpeg_simple_progression).
std::string MakeProgressiveJpeg(int w, int h, int quality = 90, uint64_t seed = 1);
// Baseline but arithmetic-coded.
std::string MakeArithmeticJpeg(int w, int h, int quality = 90, uint64_t seed = 1);
// Baseline YCbCr with an APP1 "Exif" segment whose IFD0 holds only
// Orientation = `orientation` (1..8). `w` and `h` are the stored (unrotated)
// dimensions.
std::string MakeExifJpeg(int w, int h, int orientation, int quality = 90, uint64_t seed = 1);
// `jpeg` with such an APP1 "Exif" segment inserted right after SOI.
std::string InsertExifOrientation(std::string_view jpeg, int orientation);
// What a JPEG's header says, read with libjpeg-turbo.
struct JpegInfo {
  bool ok = false;  // false: libjpeg could not read the header
  int width = 0;
  int height = 0;
  int components = 0;
  bool ycbcr = false;  // jpeg_color_space == JCS_YCbCr
  bool progressive = false;
  bool arithmetic = false;
  int precision = 0;
};
JpegInfo ReadJpegInfo(std::string_view jpeg);
// Decodes a JPEG to 8-bit RGB, row by row (width * height * 3 bytes), with
// libjpeg-turbo (CMYK is not supported). Empty on any error or warning.
std::string DecodeJpegToRgb(std::string_view jpeg, int* width, int* height);
// Offset of the first entropy-coded byte (just after the first SOS segment)
// of a JPEG, or 0 if there is no SOS. For damaging scan data in tests.
size_t JpegScanDataOffset(std::string_view jpeg);
// Offset halfway between that and the end of the JPEG, or 0 if there is no
// SOS: where a test plants damage inside the scan data.
size_t JpegScanDataMiddle(std::string_view jpeg);

// --- Other formats ---------------------------------------------------------
// 8-bit RGB PNG.
std::string MakePng(int w, int h, uint64_t seed = 1);
// 8-bit RGBA PNG; alpha falls from 255 at the left edge to 0 at the right.
std::string MakePngRgba(int w, int h, uint64_t seed = 1);
// 16-bit RGB PNG.
std::string MakePng16(int w, int h, uint64_t seed = 1);
// 8-bit grayscale PNG.
std::string MakeGrayPng(int w, int h, uint64_t seed = 1);
// Single-frame palette GIF.
std::string MakeGif(int w, int h, uint64_t seed = 1);
// Lossy WebP.
std::string MakeWebp(int w, int h, uint64_t seed = 1);
// 24-bit uncompressed bottom-up BMP (BITMAPINFOHEADER), written by hand.
std::string MakeBmp(int w, int h, uint64_t seed = 1);
// Uncompressed 8-bit RGB TIFF.
std::string MakeTiff(int w, int h, uint64_t seed = 1);
// Formats whose encoders libvips may lack: each returns an empty string if
// this libvips cannot write it (tests should then skip).
std::string MakeHeic(int w, int h, uint64_t seed = 1);  // HEVC in HEIF
std::string MakeAvif(int w, int h, uint64_t seed = 1);  // AV1 in HEIF
std::string MakeJpegXl(int w, int h, uint64_t seed = 1);
std::string MakeJpeg2000(int w, int h, uint64_t seed = 1);  // JP2 container
// A valid PNG signature and IHDR claiming w x h 8-bit RGB, a tiny IDAT
// (far too little data for those dimensions) and IEND, all with correct
// CRCs: a decompression bomb in miniature, to test pixel limits.
std::string MakeHugePngHeader(uint32_t w, uint32_t h);

// --- Damage and files -------------------------------------------------------
// The first floor(size * keep_fraction) bytes of `bytes` (keep_fraction in
// [0, 1]).
std::string Truncate(std::string_view bytes, double keep_fraction);
// `bytes` with each byte at `offsets` XORed with `mask` (offsets past the
// end are ignored).
std::string FlipBits(std::string_view bytes, const std::vector<size_t>& offsets,
                     uint8_t mask = 0xFF);
// Writes `bytes` to `path`, replacing it. Aborts with a message on failure.
void WriteFile(const std::string& path, std::string_view bytes);

}  // namespace retrain::test_images
