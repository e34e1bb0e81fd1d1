// The JPEG that a tf.Example record stores for an image file.
#pragma once

#include <string>

#include "retrain/v1/dataset.pb.h"
#include "worker/image/image_probe.h"

namespace retrain::image {

struct RecordImage {
  // A baseline (sequential, Huffman-coded) 8-bit, 3-component YCbCr JPEG.
  std::string jpeg;
  // Of `jpeg`, i.e. after EXIF rotation.
  int width = 0;
  int height = 0;
  // False: `jpeg` is the input, byte for byte. True: re-encoded by libvips.
  bool converted = false;
};

struct MakeOutcome {
  bool ok = false;
  // Set when !ok, as ProbeOutcome::reason.
  retrain::v1::SkipReason reason = retrain::v1::SKIP_REASON_UNSPECIFIED;
  std::string detail;
  // Filled when ok.
  RecordImage image;
};

// The JPEG to store for `bytes`. A passthrough JPEG (see ImageInfo) is
// returned as is, moved out of `bytes` without a copy, after the same
// libjpeg validation as ProbeImage(). Anything else is converted by libvips
// to 8-bit sRGB with 3 bands (EXIF rotation applied, alpha flattened onto
// white, first frame of an animation) and encoded as a baseline JPEG at
// `jpeg_quality` (1..100; values outside are clamped) with metadata
// stripped; that decode is itself the validation for non-JPEG formats,
// while JPEGs that need conversion are also checked with libjpeg first
// (libvips does not see every libjpeg warning): a validation as complete as
// ProbeImage()'s, with the same reasons for failures. The output is
// deterministic: the same bytes and quality give the same JPEG.
// Thread-safe.
MakeOutcome MakeRecordImage(std::string bytes, const ProbeOptions& options, int jpeg_quality);

}  // namespace retrain::image
