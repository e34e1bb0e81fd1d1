#include "worker/image/image_library.h"

#include <glib.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vips/vips8>

#include "common/logging.h"

namespace retrain::image {
namespace {

void LogVipsMessage(const gchar* domain, GLogLevelFlags level, const gchar* message,
                    gpointer /*user_data*/) {
  static const std::shared_ptr<spdlog::logger> logger = Logger("image");
  logger->debug("{}: {}", domain != nullptr ? domain : "vips",
                message != nullptr ? message : "(null)");
}

}  // namespace

absl::Status InitImageLibrary(const char* argv0) {
  // A function-local static is initialised exactly once, and other callers
  // wait for it (C++11 "magic statics").
  static const absl::Status status = [argv0]() -> absl::Status {
    // BMP is read through ImageMagick, which would otherwise start an OpenMP
    // team per image on top of our own threads. A value already set wins.
    setenv("MAGICK_THREAD_LIMIT", "1", /*overwrite=*/0);
    if (VIPS_INIT(argv0 != nullptr ? argv0 : "retrain") != 0) {
      absl::Status error =
          absl::InternalError(std::string("libvips failed to initialise: ") + vips_error_buffer());
      vips_error_clear();
      return error;
    }
    vips_cache_set_max(0);
    vips_concurrency_set(1);
    // Loaders report recoverable damage with g_warning(); the outcome of a
    // load says what matters, so keep these out of stderr.
    g_log_set_handler("VIPS",
                      static_cast<GLogLevelFlags>(G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE |
                                                  G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG),
                      LogVipsMessage, nullptr);
    return absl::OkStatus();
  }();
  return status;
}

}  // namespace retrain::image
