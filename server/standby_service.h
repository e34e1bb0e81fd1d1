// The gRPC side of a coordinator standing by (another leads; see
// leadership.h): every method but gRPC's health service, which says
// NOT_SERVING, fails with UNAVAILABLE and a message naming the leader, so
// that clients given several coordinators move on to the next.
#pragma once

#include <grpcpp/generic/async_generic_service.h>

#include <functional>
#include <string>

namespace retrain::server {

class StandbyService final : public grpc::CallbackGenericService {
 public:
  explicit StandbyService(std::function<std::string()> message) : message_(std::move(message)) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override;

 private:
  std::function<std::string()> message_;
};

}  // namespace retrain::server
