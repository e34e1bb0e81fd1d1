// Pages as a browser shows them: headless Chromium (Debian's package, from
// scripts/install-deps) run on a URL, for tests of the coordinator's pages.
#pragma once

#include <string>

namespace retrain::testing {

// The page's DOM once its scripts have run for `virtual_time_ms` of
// Chromium's virtual time (timers run, network waits do not count), with
// its profile in `profile_dir`. Fails the test when Chromium fails.
std::string RenderedPage(const std::string& url, const std::string& profile_dir,
                         int virtual_time_ms = 5000);

// Writes a PNG of the page, `width` x `height` CSS pixels, to `png_path`
// after the same wait; false (and a test failure) when Chromium fails.
bool ScreenshotPage(const std::string& url, const std::string& profile_dir,
                    const std::string& png_path, int width = 1200, int height = 1400,
                    int virtual_time_ms = 5000);

}  // namespace retrain::testing
