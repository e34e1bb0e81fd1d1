// The one place where internal absl::Status becomes gRPC status and back.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace retrain {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace retrain
