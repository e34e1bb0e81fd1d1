#include "tests/support/browser.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "tests/support/process.h"

namespace retrain::testing {

namespace {

// Chromium with no sandbox (tests may run as root), no GPU and nothing
// that reaches out, on its own profile.
std::vector<std::string> Chromium(const std::string& profile_dir, int virtual_time_ms) {
  return {"/usr/bin/chromium",
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--user-data-dir=" + profile_dir,
          "--virtual-time-budget=" + std::to_string(virtual_time_ms)};
}

}  // namespace

std::string RenderedPage(const std::string& url, const std::string& profile_dir,
                         int virtual_time_ms) {
  std::vector<std::string> argv = Chromium(profile_dir, virtual_time_ms);
  argv.insert(argv.end(), {"--dump-dom", url});
  CommandResult r = RunCommand(argv, std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 0) << "chromium (Debian's package, from scripts/install-deps): " << r.err;
  return r.out;
}

bool ScreenshotPage(const std::string& url, const std::string& profile_dir,
                    const std::string& png_path, int width, int height, int virtual_time_ms) {
  std::vector<std::string> argv = Chromium(profile_dir, virtual_time_ms);
  argv.insert(argv.end(),
              {"--hide-scrollbars", "--screenshot=" + png_path,
               "--window-size=" + std::to_string(width) + "," + std::to_string(height), url});
  CommandResult r = RunCommand(argv, std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 0) << "chromium (Debian's package, from scripts/install-deps): " << r.err;
  return r.exit_code == 0;
}

}  // namespace retrain::testing
