// retrain-server's listening side: where it serves gRPC and HTTP, the port
// files, and the address other processes reach it at.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace retrain::server {

struct FrontEndFlags {
  std::string listen = "127.0.0.1:50051";
  std::string port_file;
  std::string http_listen;  // "": no HTTP
  std::string http_port_file;
  std::string advertise_address;
  int max_request_mib = 64;

  // Fixes the ports a standby bound (port 0 picks one), so that the leader
  // it becomes serves where it was found.
  void KeepPorts(int port, int http_port);
  // Where others reach this coordinator: --advertise_address, else --listen
  // with the port bound and, for a wildcard address, this host's name.
  std::string Advertised(int port) const;
};

struct GrpcFrontEnd {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  // Stops serving, waits for calls in flight and frees the port.
  void Stop();
};

// Binds flags.listen with `credentials` and the project's limits, lets
// `add` register services, starts serving and writes --port_file.
absl::StatusOr<std::unique_ptr<GrpcFrontEnd>> StartGrpc(
    const FrontEndFlags& flags, const std::shared_ptr<grpc::ServerCredentials>& credentials,
    const std::function<void(grpc::ServerBuilder&)>& add);

// Writes "PORT\n" to `file` (named by `flag` in errors); nothing when "".
absl::Status WritePortFile(const char* flag, const std::string& file, int port);

}  // namespace retrain::server
