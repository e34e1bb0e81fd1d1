// The trainer's log lines (stderr, through the "trainer" spdlog logger).
// Code that includes LibTorch logs through this header only: PyTorch's
// LibTorch ships fmt headers of another version than the system's spdlog
// was built with, so spdlog and LibTorch cannot meet in one translation
// unit. Thread-safe.
#pragma once

#include <cstdio>
#include <string>

namespace retrain::trainer {

void LogInfo(const std::string& line);
void LogWarning(const std::string& line);
void SetTrainerLogLevel(const std::string& level);

// printf-style formatting into a std::string.
template <typename... Args>
std::string Printf(const char* format, Args... args) {
  const int n = std::snprintf(nullptr, 0, format, args...);
  std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  std::snprintf(out.data(), out.size() + 1, format, args...);
  return out;
}

}  // namespace retrain::trainer
