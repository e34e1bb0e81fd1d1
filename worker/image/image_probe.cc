#include "worker/image/image_probe.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/hashing.h"
#include "worker/image/jpeg_check.h"
#include "worker/image/vips_codec.h"

namespace retrain::image {

ProbeOutcome ProbeImage(std::string_view bytes, const ProbeOptions& options) {
  if (bytes.empty()) {
    return Refused<ProbeOutcome>(retrain::v1::SKIP_REASON_EMPTY, "the file is empty");
  }
  const ImageFormat format = DetectImageFormat(bytes);
  if (format == ImageFormat::kUnknown) {
    return Refused<ProbeOutcome>(retrain::v1::SKIP_REASON_NOT_AN_IMAGE,
                  absl::StrCat("not a known image format; first bytes ",
                               ToHex(bytes.substr(0, std::min<size_t>(bytes.size(), 8)))));
  }

  ProbeOutcome outcome;
  outcome.info.format = format;
  if (format == ImageFormat::kJpeg) {
    internal::JpegCheck check = internal::CheckJpeg(
        bytes, options.max_pixels,
        options.jpeg_structure_only ? internal::JpegScans::kWalk : internal::JpegScans::kDecode);
    if (!check.ok) return Refused<ProbeOutcome>(check.reason, std::move(check.detail));
    outcome.info.width = check.width;
    outcome.info.height = check.height;
    outcome.info.passthrough = check.passthrough;
    outcome.info.conversion = std::move(check.conversion);
  } else {
    internal::VipsRequest request;
    request.bytes = bytes;
    request.format = format;
    request.max_pixels = options.max_pixels;
    request.encode = false;
    internal::VipsResult result = internal::RunVips(request);
    if (!result.ok) return Refused<ProbeOutcome>(result.reason, std::move(result.detail));
    outcome.info.width = result.width;
    outcome.info.height = result.height;
    outcome.info.passthrough = false;
    outcome.info.conversion = ImageFormatName(format);
    if (result.orientation != 1) {
      absl::StrAppend(&outcome.info.conversion, ", exif orientation ", result.orientation);
    }
  }
  outcome.ok = true;
  return outcome;
}

}  // namespace retrain::image
