// Internal to retrain_image: decoding (and re-encoding) with libvips. This is
// the one place where vips::VError is caught and turned into a result.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "retrain/v1/dataset.pb.h"
#include "worker/image/image_format.h"

namespace retrain::image::internal {

struct VipsRequest {
  // Borrowed; must stay alive for the call.
  std::string_view bytes;
  ImageFormat format = ImageFormat::kUnknown;
  int64_t max_pixels = 0;
  // JPEG only: the EXIF orientation found by CheckJpeg(), which overrides
  // what libvips reads, so that both agree. 0: use libvips' own metadata.
  int orientation_override = 0;
  // True: re-encode as baseline JPEG at `jpeg_quality`. False: decode and
  // convert every pixel, and discard them (validation only).
  bool encode = false;
  int jpeg_quality = 95;
};

struct VipsResult {
  bool ok = false;
  retrain::v1::SkipReason reason = retrain::v1::SKIP_REASON_UNSPECIFIED;
  std::string detail;
  // The image as stored: 8-bit sRGB, 3 bands, after EXIF rotation.
  int width = 0;
  int height = 0;
  // Orientation that was applied, 1..8.
  int orientation = 1;
  // The baseline JPEG when `encode`.
  std::string jpeg;
};

// Loads `request.bytes` with the libvips loader for `request.format`
// (sequential access, fail_on=VIPS_FAIL_ON_WARNING), refuses images of more
// than `max_pixels` pixels from the header alone, then runs every pixel
// through: EXIF rotation (autorot), conversion to sRGB (ICC for CMYK),
// alpha flattened onto white, 8-bit, 3 bands; and either encodes that as a
// baseline JPEG (no interlace, metadata stripped) or just consumes it.
// Formats without a loader in this libvips are UNSUPPORTED. Initialises
// libvips if needed. Thread-safe.
VipsResult RunVips(const VipsRequest& request);

// True if this libvips can load `format` from memory. Initialises libvips.
bool VipsCanLoad(ImageFormat format);

}  // namespace retrain::image::internal
