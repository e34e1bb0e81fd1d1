// Format detection and the JPEG check on arbitrary bytes (the first stage
// of validating every image of a build): an answer for any input.
#include <string_view>

#include "tests/fuzz/fuzz_target.h"
#include "worker/image/image_format.h"
#include "worker/image/jpeg_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto format = retrain::image::DetectImageFormat(bytes);
  (void)retrain::image::ImageFormatName(format);
  if (format == retrain::image::ImageFormat::kJpeg) {
    using retrain::image::internal::JpegScans;
    for (JpegScans scans : {JpegScans::kWalk, JpegScans::kDecode}) {
      retrain::image::internal::CheckJpeg(bytes, /*max_pixels=*/1 << 22, scans);
    }
  }
  return 0;
}
