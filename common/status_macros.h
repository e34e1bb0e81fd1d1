// Error propagation for absl::Status / absl::StatusOr (Debian's abseil does
// not ship these macros).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RETRAIN_CONCAT_INNER(a, b) a##b
#define RETRAIN_CONCAT(a, b) RETRAIN_CONCAT_INNER(a, b)

// Returns the status from the enclosing function if it is not OK.
#define RETURN_IF_ERROR(expr)                         \
  do {                                                \
    ::absl::Status retrain_status_ = (expr);          \
    if (!retrain_status_.ok()) return retrain_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, Foo());` declares x from Foo()'s value, or
// returns Foo()'s error from the enclosing function.
#define ASSIGN_OR_RETURN(lhs, expr) \
  RETRAIN_ASSIGN_OR_RETURN_IMPL(RETRAIN_CONCAT(retrain_or_, __LINE__), lhs, expr)
#define RETRAIN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()
