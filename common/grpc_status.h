// The one place where internal absl::Status becomes gRPC status and back.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace retrain {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// Whether a call failed because no coordinator was there to answer it, so
// that making it again (with the same request id, where it has one) is
// right: UNAVAILABLE, or CANCELLED from a coordinator that stopped serving
// while the call was on its way (one that stops leading, or a standby that
// takes over, closes its front-end under calls in flight). Only for calls
// the caller does not cancel itself.
bool CoordinatorWentAway(const grpc::Status& status);

}  // namespace retrain
