// Process-wide set-up of the image libraries (libvips).
#pragma once

#include "absl/status/status.h"

namespace retrain::image {

// Initialises libvips for this process: VIPS_INIT, no operation cache
// (vips_cache_set_max(0)) and one vips worker thread per pipeline
// (vips_concurrency_set(1)), since parallelism comes from the caller's own
// threads. libvips' GLib warnings are sent to the "image" logger at debug
// level instead of stderr. Sets MAGICK_THREAD_LIMIT=1 in the environment
// unless already set (ImageMagick reads BMP for libvips). `argv0` may be
// null.
//
// Idempotent and thread-safe: the first call does the work, later calls
// return its result. ProbeImage and MakeRecordImage call it themselves (with
// a null argv0) if the program has not, but a program should call it early
// from main() so that a failure is reported once, at start-up.
absl::Status InitImageLibrary(const char* argv0);

}  // namespace retrain::image
