#include "common/bearer_token.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace retrain {

absl::StatusOr<std::string> LoadToken(const std::string& flag, const std::string& file,
                                      const char* env_var) {
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": cannot read the token file ", file));
    }
    std::stringstream text;
    text << in.rdbuf();
    std::string token(absl::StripAsciiWhitespace(text.str()));
    if (token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": the token file ", file, " is empty"));
    }
    return token;
  }
  const char* value = std::getenv(env_var);
  return value == nullptr ? std::string() : std::string(absl::StripAsciiWhitespace(value));
}

std::string BearerValue(const std::string& token) { return absl::StrCat("Bearer ", token); }

std::string TokenOfBearerValue(const std::string& authorization) {
  constexpr absl::string_view kPrefix = "Bearer ";
  if (!absl::StartsWithIgnoreCase(authorization, kPrefix)) return "";
  return std::string(
      absl::StripAsciiWhitespace(absl::string_view(authorization).substr(kPrefix.size())));
}

}  // namespace retrain
