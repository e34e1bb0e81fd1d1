// A gRPC server interceptor that counts and times every call into Metrics:
// register RpcMetricsInterceptorFactory with
// ServerBuilder::experimental().SetInterceptorCreators().
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <vector>

#include "server/metrics.h"

namespace retrain::server {

// `metrics` must outlive the server.
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
RpcMetricsInterceptors(Metrics& metrics);

}  // namespace retrain::server
