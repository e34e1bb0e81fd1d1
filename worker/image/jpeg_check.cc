#include "worker/image/jpeg_check.h"

// clang-format off
#include <cstdio>    // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <libexif/exif-data.h>

#include <csetjmp>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace retrain::image::internal {
namespace {

constexpr int kMaxScans = 500;

// What went wrong inside libjpeg, recorded by the callbacks below before
// they longjmp() back. Plain data only: it crosses longjmp().
struct Failure {
  enum Kind { kNone, kError, kWarning, kTooManyScans };
  Kind kind = kNone;
  int msg_code = 0;
  char message[JMSG_LENGTH_MAX] = {};
};

struct ErrorManager {
  jpeg_error_mgr pub;  // first, so that cinfo->err can be cast back
  std::jmp_buf jump;
  Failure* failure;
};

[[noreturn]] void Fail(j_common_ptr cinfo, Failure::Kind kind) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  err->failure->kind = kind;
  err->failure->msg_code = cinfo->err->msg_code;
  (*cinfo->err->format_message)(cinfo, err->failure->message);
  std::longjmp(err->jump, 1);
}

void OnErrorExit(j_common_ptr cinfo) { Fail(cinfo, Failure::kError); }

// Warnings (level -1) end the read at once: any of them disqualifies the
// file. Trace messages (level >= 0) are ignored.
void OnEmitMessage(j_common_ptr cinfo, int msg_level) {
  if (msg_level < 0) Fail(cinfo, Failure::kWarning);
}

void OnOutputMessage(j_common_ptr /*cinfo*/) {}

void OnProgress(j_common_ptr cinfo) {
  auto* dinfo = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (dinfo->input_scan_number > kMaxScans) {
    auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
    err->failure->kind = Failure::kTooManyScans;
    std::longjmp(err->jump, 1);
  }
}

// Header facts, copied out of libjpeg's struct. Plain data.
struct Header {
  bool too_many_pixels = false;
  unsigned width = 0;
  unsigned height = 0;
  int components = 0;
  J_COLOR_SPACE color_space = JCS_UNKNOWN;
  int precision = 0;
  bool progressive = false;
  bool arithmetic = false;
  int orientation = 1;
  // Where the first scan's entropy-coded data starts.
  size_t first_scan_data = 0;
};

// EXIF orientation from a saved APP1 segment, 0 if it has none.
int ExifOrientation(const unsigned char* data, unsigned size) {
  static constexpr unsigned char kExifHeader[] = {'E', 'x', 'i', 'f', 0, 0};
  if (size < sizeof(kExifHeader) || std::memcmp(data, kExifHeader, sizeof(kExifHeader)) != 0) {
    return 0;
  }
  ExifData* exif = exif_data_new();
  if (exif == nullptr) return 0;
  // Read as stored: no fixing up of entries.
  exif_data_unset_option(exif, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
  exif_data_load_data(exif, data, size);
  int orientation = 0;
  ExifEntry* entry = exif_content_get_entry(exif->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
  if (entry != nullptr && entry->format == EXIF_FORMAT_SHORT && entry->components >= 1 &&
      entry->size >= 2) {
    orientation = exif_get_short(entry->data, exif_data_get_byte_order(exif));
  }
  exif_data_unref(exif);
  return orientation;
}

// Runs libjpeg over `data`. All C++ objects with destructors live in the
// caller: nothing here is skipped over by longjmp() but C frames.
void RunLibjpeg(const unsigned char* data, size_t size, int64_t max_pixels, JpegScans scans,
                Header* header, Failure* failure) {
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof(cinfo));
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = OnErrorExit;
  err.pub.emit_message = OnEmitMessage;
  err.pub.output_message = OnOutputMessage;
  err.failure = failure;
  jpeg_progress_mgr progress;
  std::memset(&progress, 0, sizeof(progress));
  progress.progress_monitor = OnProgress;

  if (setjmp(err.jump) != 0) {
    jpeg_destroy_decompress(&cinfo);
    return;
  }
  jpeg_create_decompress(&cinfo);
  cinfo.progress = &progress;
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);

  // jpeg_mem_src hands libjpeg the whole file at once: what it has not
  // consumed follows the first SOS header.
  header->first_scan_data = size - cinfo.src->bytes_in_buffer;
  header->width = cinfo.image_width;
  header->height = cinfo.image_height;
  header->components = cinfo.num_components;
  header->color_space = cinfo.jpeg_color_space;
  header->precision = cinfo.data_precision;
  header->progressive = cinfo.progressive_mode != 0;
  header->arithmetic = cinfo.arith_code != 0;
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != nullptr; m = m->next) {
    if (m->marker != JPEG_APP0 + 1) continue;
    const int orientation = ExifOrientation(m->data, m->data_length);
    if (orientation != 0) {
      header->orientation = orientation >= 1 && orientation <= 8 ? orientation : 1;
      break;
    }
  }
  if (static_cast<int64_t>(cinfo.image_width) * cinfo.image_height > max_pixels) {
    header->too_many_pixels = true;
    jpeg_destroy_decompress(&cinfo);
    return;
  }
  if (scans != JpegScans::kDecode) {
    jpeg_destroy_decompress(&cinfo);
    return;
  }

  // Entropy-decode every scan, but reconstruct only a 1/8-scale image (the
  // inverse DCT of the DC coefficient alone) in the JPEG's own colour space:
  // all compressed data is read and checked, at a little less cost than
  // jpeg_read_coefficients() and, for sequential JPEGs, with memory for one
  // row instead of a whole-image coefficient array.
  cinfo.scale_num = 1;
  cinfo.scale_denom = 8;
  cinfo.out_color_space = cinfo.jpeg_color_space;
  cinfo.do_fancy_upsampling = FALSE;
  cinfo.dct_method = JDCT_IFAST;
  jpeg_start_decompress(&cinfo);
  JSAMPARRAY row = (*cinfo.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&cinfo), JPOOL_IMAGE,
                                              cinfo.output_width * cinfo.output_components, 1);
  while (cinfo.output_scanline < cinfo.output_height) jpeg_read_scanlines(&cinfo, row, 1);
  // Reads the rest of the file up to EOI.
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
}

// What a walk of a JPEG's scans found: empty when it reached EOI.
struct WalkProblem {
  v1::SkipReason reason = v1::SKIP_REASON_UNSPECIFIED;
  std::string detail;
};

WalkProblem WalkFailure(v1::SkipReason reason, std::string detail) {
  return {reason, absl::StrCat("structure: ", detail)};
}

// From `at`, the first byte of the first scan's entropy-coded data, to EOI:
// skips entropy-coded data (0xFF 0x00 is a stuffed byte, 0xFF 0xD0..0xD7 a
// restart marker, 0xFF 0xFF fill) to each marker, and steps over the
// segments a JPEG holds between scans.
WalkProblem WalkScans(std::string_view bytes, size_t at) {
  int scans = 1;
  while (true) {
    const size_t ff = bytes.find('\xFF', at);
    if (ff == std::string_view::npos || ff + 1 >= bytes.size()) {
      return WalkFailure(v1::SKIP_REASON_TRUNCATED,
                         absl::StrCat("the file ends in scan ", scans, " before its EOI marker"));
    }
    const unsigned char marker = static_cast<unsigned char>(bytes[ff + 1]);
    if (marker == 0x00 || marker == 0xFF || (marker >= 0xD0 && marker <= 0xD7)) {
      at = ff + (marker == 0xFF ? 1 : 2);
      continue;
    }
    if (marker == 0xD9) return {};  // EOI
    const bool between_scans = marker == 0xC4 || marker == 0xCC || marker == 0xDA ||
                               marker == 0xDB || marker == 0xDC || marker == 0xDD ||
                               marker == 0xFE || (marker >= 0xE0 && marker <= 0xEF);
    if (!between_scans) {
      return WalkFailure(
          v1::SKIP_REASON_CORRUPT,
          absl::StrFormat("marker 0xFF%02X at byte %d where only scans may follow", marker, ff));
    }
    if (ff + 4 > bytes.size()) {
      return WalkFailure(v1::SKIP_REASON_TRUNCATED,
                         absl::StrCat("the file ends in the marker at byte ", ff));
    }
    const size_t length =
        static_cast<unsigned char>(bytes[ff + 2]) << 8 | static_cast<unsigned char>(bytes[ff + 3]);
    if (length < 2) {
      return WalkFailure(v1::SKIP_REASON_CORRUPT,
                         absl::StrCat("segment length ", length, " at byte ", ff + 2));
    }
    at = ff + 2 + length;
    if (at > bytes.size()) {
      return WalkFailure(v1::SKIP_REASON_TRUNCATED,
                         absl::StrCat("the segment at byte ", ff, " runs past the end"));
    }
    if (marker == 0xDA && ++scans > kMaxScans) {
      return WalkFailure(v1::SKIP_REASON_CORRUPT, absl::StrCat("more than ", kMaxScans, " scans"));
    }
  }
}

bool IsUnsupportedVariant(int msg_code) {
  switch (msg_code) {
    case JERR_NOT_COMPILED:
    case JERR_NOTIMPL:
    case JERR_ARITH_NOTIMPL:
    case JERR_BAD_PRECISION:
    case JERR_SOF_UNSUPPORTED:
    case JERR_CCIR601_NOTIMPL:
    case JERR_IMAGE_TOO_BIG:
    case JERR_CONVERSION_NOTIMPL:
      return true;
    default:
      return false;
  }
}

const char* ColorSpaceConversion(J_COLOR_SPACE color_space) {
  switch (color_space) {
    case JCS_GRAYSCALE:
      return "grayscale jpeg";
    case JCS_RGB:
      return "rgb jpeg";
    case JCS_CMYK:
      return "cmyk jpeg";
    case JCS_YCCK:
      return "ycck jpeg";
    default:
      return "jpeg in an unusual colour space";
  }
}

}  // namespace

JpegCheck CheckJpeg(std::string_view bytes, int64_t max_pixels, JpegScans scans) {
  Header header;
  Failure failure;
  RunLibjpeg(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), max_pixels, scans,
             &header, &failure);

  JpegCheck check;
  switch (failure.kind) {
    case Failure::kNone:
      break;
    case Failure::kWarning:
      check.reason =
          failure.msg_code == JWRN_JPEG_EOF ? v1::SKIP_REASON_TRUNCATED : v1::SKIP_REASON_CORRUPT;
      check.detail = absl::StrCat("libjpeg: ", failure.message);
      return check;
    case Failure::kError:
      if (failure.msg_code == JERR_INPUT_EOF) {
        check.reason = v1::SKIP_REASON_TRUNCATED;
      } else if (IsUnsupportedVariant(failure.msg_code)) {
        check.reason = v1::SKIP_REASON_UNSUPPORTED;
      } else {
        check.reason = v1::SKIP_REASON_CORRUPT;
      }
      check.detail = absl::StrCat("libjpeg: ", failure.message);
      return check;
    case Failure::kTooManyScans:
      check.reason = v1::SKIP_REASON_CORRUPT;
      check.detail = absl::StrCat("libjpeg: more than ", kMaxScans, " scans");
      return check;
  }
  if (header.too_many_pixels) {
    check.reason = v1::SKIP_REASON_TOO_MANY_PIXELS;
    check.detail = absl::StrCat(header.width, "x", header.height, " is ",
                                static_cast<int64_t>(header.width) * header.height,
                                " pixels, more than the limit of ", max_pixels);
    return check;
  }
  if (scans == JpegScans::kWalk) {
    WalkProblem problem = WalkScans(bytes, header.first_scan_data);
    if (problem.reason != v1::SKIP_REASON_UNSPECIFIED) {
      check.reason = problem.reason;
      check.detail = std::move(problem.detail);
      return check;
    }
  }

  check.ok = true;
  check.orientation = header.orientation;
  const bool transposed = header.orientation >= 5;
  check.width = static_cast<int>(transposed ? header.height : header.width);
  check.height = static_cast<int>(transposed ? header.width : header.height);

  std::vector<std::string> reasons;
  if (header.components != 3 || header.color_space != JCS_YCbCr) {
    reasons.push_back(ColorSpaceConversion(header.color_space));
  }
  if (header.precision != 8) reasons.push_back(absl::StrCat(header.precision, "-bit jpeg"));
  if (header.progressive) reasons.push_back("progressive jpeg");
  if (header.arithmetic) reasons.push_back("arithmetic-coded jpeg");
  if (header.orientation != 1)
    reasons.push_back(absl::StrCat("exif orientation ", header.orientation));
  check.passthrough = reasons.empty();
  check.conversion = absl::StrJoin(reasons, ", ");
  return check;
}

}  // namespace retrain::image::internal
