// Internal to retrain_image: complete validation of a JPEG with libjpeg-turbo
// (no vips), and the facts that decide whether it can be stored as is.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "retrain/v1/dataset.pb.h"

namespace retrain::image::internal {

// How much of a JPEG CheckJpeg reads past its header.
enum class JpegScans {
  // Every marker segment after the first scan's header walked to EOI, the
  // entropy-coded data between them skipped byte by byte without decoding
  // (ProbeOptions.jpeg_structure_only).
  kWalk,
  // Every scan entropy-decoded up to EOI.
  kDecode,
};

struct JpegCheck {
  // False: `reason` and `detail` say why the JPEG cannot be used.
  bool ok = false;
  retrain::v1::SkipReason reason = retrain::v1::SKIP_REASON_UNSPECIFIED;
  std::string detail;
  // Dimensions once the EXIF orientation is applied (5..8 swap them).
  int width = 0;
  int height = 0;
  // EXIF orientation 1..8 from the APP1 "Exif" segment; 1 when absent or
  // out of range.
  int orientation = 1;
  // 3-component YCbCr, 8-bit, sequential, Huffman-coded, orientation 1.
  bool passthrough = false;
  // Why it is not passthrough, e.g. "cmyk jpeg, progressive jpeg"; empty
  // when passthrough.
  std::string conversion;
};

// Reads the header, refuses more than `max_pixels` pixels before decoding
// anything, then (kDecode) entropy-decodes every scan up to EOI (reconstructing only
// a 1/8-scale image, so no full IDCT, no colour conversion and, for
// sequential JPEGs, no whole-image buffer). Any libjpeg warning fails the
// check:
// "Premature end of JPEG file" as TRUNCATED, the others as CORRUPT; libjpeg
// errors are CORRUPT, or UNSUPPORTED for variants this libjpeg cannot
// decode (12-bit, lossless, hierarchical). More than 500 scans are refused
// as CORRUPT (a progressive-JPEG denial of service). Thread-safe.
//
// kWalk instead checks the structure past the first scan's header: each
// marker's segment length inside the file, only the markers a JPEG may hold
// between scans (DHT, DQT, DRI, DNL, DAC, APPn, COM, SOS), RSTn and stuffed
// bytes inside entropy-coded data, at most 500 scans, and EOI before the
// end (else TRUNCATED). Damage inside entropy-coded data that keeps its
// markers passes a walk.
JpegCheck CheckJpeg(std::string_view bytes, int64_t max_pixels,
                    JpegScans scans = JpegScans::kDecode);

}  // namespace retrain::image::internal
