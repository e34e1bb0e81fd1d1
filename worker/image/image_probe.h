// Validation of one image file's bytes, and whether its JPEG can be stored
// as is.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "retrain/v1/dataset.pb.h"
#include "worker/image/image_format.h"

namespace retrain::image {

struct ProbeOptions {
  // Images with more pixels (width * height, from the header) are refused
  // as TOO_MANY_PIXELS before any pixel is decoded.
  int64_t max_pixels = 100'000'000;
  // For input the user trusts (a build's --verify structure): a JPEG's
  // marker segments are walked to EOI instead of its scans being
  // entropy-decoded. A JPEG cut short is still refused; damage inside its
  // entropy-coded data is not seen. Other formats are decoded either way.
  bool jpeg_structure_only = false;
};

struct ImageInfo {
  ImageFormat format = ImageFormat::kUnknown;
  // Dimensions of the image as it will be stored, i.e. after the EXIF
  // orientation is applied (orientations 5..8 swap width and height).
  int width = 0;
  int height = 0;
  // True: a JPEG that is 3-component YCbCr, 8-bit, sequential, Huffman-coded
  // and has no EXIF orientation other than 1; its bytes are stored as they
  // are. False: it is converted and re-encoded.
  bool passthrough = false;
  // Why it is converted, e.g. "png", "grayscale jpeg", "cmyk jpeg",
  // "progressive jpeg", "exif orientation 6" (several joined by ", ").
  // Empty when passthrough.
  std::string conversion;
};

struct ProbeOutcome {
  bool ok = false;
  // Set when !ok: NOT_AN_IMAGE, TRUNCATED, CORRUPT, UNSUPPORTED,
  // TOO_MANY_PIXELS or EMPTY.
  retrain::v1::SkipReason reason = retrain::v1::SKIP_REASON_UNSPECIFIED;
  // What the decoder said, e.g. "libjpeg: Premature end of JPEG file".
  std::string detail;
  // Filled when ok.
  ImageInfo info;
};

// An outcome (ProbeOutcome, MakeOutcome) that refuses the image for
// `reason`, with what the decoder said.
template <typename Outcome>
Outcome Refused(retrain::v1::SkipReason reason, std::string detail) {
  Outcome outcome;
  outcome.reason = reason;
  outcome.detail = std::move(detail);
  return outcome;
}

// Validates the image completely and says whether it can be stored as is.
// The format comes from the bytes, never from a file name. JPEGs are checked
// with libjpeg-turbo: header, pixel limit, then every scan entropy-decoded
// up to EOI (only a 1/8-scale image is reconstructed, so this costs about
// two thirds of a full decode), or with jpeg_structure_only their marker
// segments walked to EOI; any libjpeg warning fails them. Other
// formats are decoded in full by libvips (fail_on=warning) and run through
// the same conversion MakeRecordImage() uses, without the JPEG encode.
// Initialises libvips if InitImageLibrary() has not been called. Thread-safe.
ProbeOutcome ProbeImage(std::string_view bytes, const ProbeOptions& options);

}  // namespace retrain::image
