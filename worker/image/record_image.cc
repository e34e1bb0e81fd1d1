#include "worker/image/record_image.h"

#include <algorithm>
#include <utility>

#include "worker/image/image_format.h"
#include "worker/image/jpeg_check.h"
#include "worker/image/vips_codec.h"

namespace retrain::image {

MakeOutcome MakeRecordImage(std::string bytes, const ProbeOptions& options, int jpeg_quality) {
  if (bytes.empty()) {
    return Refused<MakeOutcome>(retrain::v1::SKIP_REASON_EMPTY, "the file is empty");
  }
  const ImageFormat format = DetectImageFormat(bytes);
  if (format == ImageFormat::kUnknown) {
    // Same reason and wording as ProbeImage().
    ProbeOutcome probe = ProbeImage(bytes, options);
    return Refused<MakeOutcome>(probe.reason, std::move(probe.detail));
  }

  internal::VipsRequest request;
  request.format = format;
  request.max_pixels = options.max_pixels;
  request.encode = true;
  request.jpeg_quality = std::clamp(jpeg_quality, 1, 100);
  if (format == ImageFormat::kJpeg) {
    const internal::JpegScans scans =
        options.jpeg_structure_only ? internal::JpegScans::kWalk : internal::JpegScans::kDecode;
    internal::JpegCheck check = internal::CheckJpeg(bytes, options.max_pixels, scans);
    if (!check.ok) return Refused<MakeOutcome>(check.reason, std::move(check.detail));
    if (check.passthrough) {
      MakeOutcome outcome;
      outcome.ok = true;
      outcome.image.jpeg = std::move(bytes);
      outcome.image.width = check.width;
      outcome.image.height = check.height;
      outcome.image.converted = false;
      return outcome;
    }
    request.orientation_override = check.orientation;
  }

  request.bytes = bytes;
  internal::VipsResult result = internal::RunVips(request);
  if (!result.ok) return Refused<MakeOutcome>(result.reason, std::move(result.detail));
  MakeOutcome outcome;
  outcome.ok = true;
  outcome.image.jpeg = std::move(result.jpeg);
  outcome.image.width = result.width;
  outcome.image.height = result.height;
  outcome.image.converted = true;
  return outcome;
}

}  // namespace retrain::image
