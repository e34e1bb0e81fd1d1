// One named spdlog logger per component ("server", "worker", "client", ...),
// writing to stderr. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "spdlog/spdlog.h"

namespace retrain {

std::shared_ptr<spdlog::logger> Logger(const std::string& component);

// Sets the level of every logger: "trace", "debug", "info", "warn", "error".
void SetLogLevel(const std::string& level);

}  // namespace retrain
