// JPEG decoding that reads only what a crop needs (libjpeg-turbo's jpeglib.h
// API; no turbojpeg.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace retrain::trainer {

// A rectangle in source pixels: [x, x + width) x [y, y + height).
struct CropRect {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;
  bool operator==(const CropRect& o) const {
    return x == o.x && y == o.y && width == o.width && height == o.height;
  }
};

// A region of interest in an image's pixels, fractional.
struct RegionF {
  float x = 0, y = 0, width = 0, height = 0;
};

// Decoded 8-bit RGB pixels, interleaved, `stride` bytes per row, and where
// the requested crop lies in them. The decoded region is the crop at the DCT
// scale, widened to whole pixels and on the left to libjpeg's iMCU column
// boundary, so `roi` is generally fractional and not at (0, 0).
struct DecodedImage {
  std::vector<uint8_t> pixels;  // reused between decodes
  int width = 0;                // decoded region, in scaled pixels
  int height = 0;
  int stride = 0;     // bytes per row (width * 3)
  int scale_num = 8;  // decoded at scale_num / 8 of the source size
  RegionF roi;        // the crop, in decoded pixels
};

// The largest DCT-domain reduction 8/8, 4/8, 2/8 or 1/8 (returned as the
// numerator) that keeps a crop of crop_width x crop_height source pixels at
// least out_width x out_height: decoding at that scale reads the same
// compressed data but runs the inverse DCT and colour conversion on up to 64x
// fewer pixels, and the resize that follows still only shrinks.
int ChooseDctScale(int crop_width, int crop_height, int out_width, int out_height);

// Where the images come from, for the advice in error messages: records of
// a built dataset (rebuild it) or files a user named (convert or replace
// them).
enum class ImageSource { kDatasetRecord, kFile };

// Decodes JPEG images, one at a time, for one thread. Reuses libjpeg's state
// and buffers between images. Not thread-safe: one per preprocessing thread.
//
// Use: ReadHeader(), then one of DecodeCrop() / DecodeFull() for that image.
// Failures (not a JPEG, truncated or corrupt data, a colour space that cannot
// become RGB) throw TrainerError(kData) whose message starts with the
// `where` passed to ReadHeader() (e.g. "<shard>: record at offset N").
class JpegCropDecoder {
 public:
  explicit JpegCropDecoder(ImageSource source = ImageSource::kDatasetRecord);
  ~JpegCropDecoder();
  JpegCropDecoder(const JpegCropDecoder&) = delete;
  JpegCropDecoder& operator=(const JpegCropDecoder&) = delete;

  struct Header {
    int width = 0;
    int height = 0;
    int components = 0;
  };

  // Parses the headers of the JPEG in data[0, size), which must stay valid
  // until the decode that follows returns.
  Header ReadHeader(const uint8_t* data, size_t size, const std::string& where);

  // Decodes `crop` (clamped to the image) as 8-bit RGB at the scale
  // ChooseDctScale(crop, out_width, out_height) picks (or at full size when
  // !dct_scaling): columns outside the crop are cropped by
  // jpeg_crop_scanline (no inverse DCT, upsampling or colour conversion for
  // them), rows above it are skipped with jpeg_skip_scanlines (entropy
  // decoding only), and decoding stops after the crop's last row.
  void DecodeCrop(const CropRect& crop, int out_width, int out_height, bool dct_scaling,
                  DecodedImage* out);

  // Decodes the whole image at full size (for comparison and benchmarks).
  void DecodeFull(DecodedImage* out);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace retrain::trainer
