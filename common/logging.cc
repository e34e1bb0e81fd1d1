#include "common/logging.h"

#include <atomic>
#include <cctype>
#include <chrono>
#include <ctime>
#include <map>
#include <mutex>

#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_color_sinks.h"

namespace retrain {

namespace {

constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%e %^%L%$ [%n] %v";
std::atomic<bool> g_json{false};

void AppendJsonString(std::string& out, const std::string& s) {
  out.push_back('"');
  for (const unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

// The first "<prefix><digits>" in `message` that stands alone as a word
// ("j-000012", "w-3"), or "".
std::string FirstId(const std::string& message, const std::string& prefix) {
  for (size_t at = message.find(prefix); at != std::string::npos;
       at = message.find(prefix, at + 1)) {
    if (at > 0 && (std::isalnum(static_cast<unsigned char>(message[at - 1])) ||
                   message[at - 1] == '-' || message[at - 1] == '_')) {
      continue;
    }
    size_t end = at + prefix.size();
    while (end < message.size() && std::isdigit(static_cast<unsigned char>(message[end]))) ++end;
    if (end == at + prefix.size()) continue;
    if (end < message.size() && (std::isalnum(static_cast<unsigned char>(message[end])) ||
                                 message[end] == '_')) {
      continue;
    }
    return message.substr(at, end - at);
  }
  return "";
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto t = std::chrono::system_clock::to_time_t(msg.time);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        msg.time.time_since_epoch())
                        .count() %
                    1000;
    std::tm utc{};
    gmtime_r(&t, &utc);
    char time[40];
    const size_t n = std::strftime(time, sizeof time, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(time + n, sizeof time - n, ".%03dZ", static_cast<int>(ms));
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string line =
        JsonLogLine(time, std::string(level.data(), level.size()),
                    std::string(msg.logger_name.data(), msg.logger_name.size()),
                    std::string(msg.payload.data(), msg.payload.size()));
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

void ApplyFormat(spdlog::logger& logger) {
  if (g_json) {
    logger.set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger.set_pattern(kTextPattern);
  }
}

}  // namespace

std::string JsonLogLine(const std::string& time, const std::string& level,
                        const std::string& component, const std::string& message) {
  std::string out = "{\"time\":";
  AppendJsonString(out, time);
  out += ",\"level\":";
  AppendJsonString(out, level);
  out += ",\"component\":";
  AppendJsonString(out, component);
  out += ",\"message\":";
  AppendJsonString(out, message);
  for (const auto& [key, prefix] : {std::pair<const char*, const char*>{"job", "j-"},
                                    std::pair<const char*, const char*>{"worker", "w-"}}) {
    const std::string id = FirstId(message, prefix);
    if (id.empty()) continue;
    out += ",\"";
    out += key;
    out += "\":";
    AppendJsonString(out, id);
  }
  out += "}";
  return out;
}

std::shared_ptr<spdlog::logger> Logger(const std::string& component) {
  // Held here as well as in spdlog's registry, and never destroyed: a thread
  // that still logs while the process exits (gRPC's, a task's) must not
  // meet the registry, a static, being torn down.
  static auto* mu = new std::mutex;
  static auto* loggers = new std::map<std::string, std::shared_ptr<spdlog::logger>>;
  std::lock_guard<std::mutex> lock(*mu);
  auto& logger = (*loggers)[component];
  if (logger == nullptr) {
    logger = spdlog::get(component);
    if (logger == nullptr) {
      logger = spdlog::stderr_color_mt(component);
      ApplyFormat(*logger);
    }
  }
  return logger;
}

void SetLogLevel(const std::string& level) {
  spdlog::set_level(spdlog::level::from_str(level));
}

bool SetLogFormat(const std::string& format) {
  if (format != "text" && format != "json") return false;
  g_json = format == "json";
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { ApplyFormat(*l); });
  return true;
}

}  // namespace retrain
