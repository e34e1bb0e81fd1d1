// One named spdlog logger per component ("server", "worker", "trainer",
// ...), writing to stderr, as text lines or JSON lines. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "spdlog/spdlog.h"

namespace retrain {

std::shared_ptr<spdlog::logger> Logger(const std::string& component);

// Sets the level of every logger: "trace", "debug", "info", "warn", "error".
void SetLogLevel(const std::string& level);

// "text" (the default): "2026-12-01T10:00:00.123 I [server] message".
// "json": one object per line for log collectors,
//   {"time":"2026-12-01T10:00:00.123Z","level":"info","component":"server",
//    "message":"...","job":"j-000012","worker":"w-3"}
// where "job" and "worker" are the first job and worker ids the message
// names (left out when it names none). Applies to every logger, existing
// and future. Returns false for another name.
bool SetLogFormat(const std::string& format);

// The JSON line SetLogFormat("json") writes for one message (without the
// newline); `time` as formatted by the logger.
std::string JsonLogLine(const std::string& time, const std::string& level,
                        const std::string& component, const std::string& message);

}  // namespace retrain
