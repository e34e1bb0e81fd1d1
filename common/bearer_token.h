// Shared-secret bearer tokens: how a process finds its token, and how a gRPC
// call carries it ("authorization: Bearer <token>", as HTTP does).
//
// Tokens come from a file (mode 0600 is the caller's business) or an
// environment variable, never from a command-line value that `ps` would
// show.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace retrain {

// The token in `file` when it is not empty, else in the environment variable
// `env_var`, else "" (no token). Surrounding whitespace is dropped. A file
// that cannot be read or holds only whitespace is an error naming it and
// `flag` (the flag that gave the file).
absl::StatusOr<std::string> LoadToken(const std::string& flag, const std::string& file,
                                      const char* env_var);

// "Bearer <token>": the authorization value of a request carrying `token`.
std::string BearerValue(const std::string& token);

// The token of an authorization value, or "" when it is not "Bearer <x>".
std::string TokenOfBearerValue(const std::string& authorization);

}  // namespace retrain
