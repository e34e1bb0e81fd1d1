#include "server/front_ends.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace retrain::server {

namespace {

std::string WithPort(const std::string& address, int port) {
  return absl::StrCat(address.substr(0, address.rfind(':')), ":", port);
}

}  // namespace

void FrontEndFlags::KeepPorts(int port, int http_port) {
  listen = WithPort(listen, port);
  if (!http_listen.empty() && http_port > 0) http_listen = WithPort(http_listen, http_port);
}

std::string FrontEndFlags::Advertised(int port) const {
  if (!advertise_address.empty()) return advertise_address;
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") {
    char name[256] = {};
    gethostname(name, sizeof name - 1);
    host = name;
  }
  return absl::StrCat(host, ":", port);
}

void GrpcFrontEnd::Stop() {
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
}

absl::Status WritePortFile(const char* flag, const std::string& file, int port) {
  if (file.empty()) return absl::OkStatus();
  absl::Status s = WriteFileAtomically(file, absl::StrCat(port, "\n"));
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(flag, ": ", s.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<GrpcFrontEnd>> StartGrpc(
    const FrontEndFlags& flags, const std::shared_ptr<grpc::ServerCredentials>& credentials,
    const std::function<void(grpc::ServerBuilder&)>& add) {
  auto front = std::make_unique<GrpcFrontEnd>();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(flags.listen, credentials, &front->port);
  add(builder);
  builder.SetMaxReceiveMessageSize(flags.max_request_mib << 20);
  // Streams one client connection may hold open at once.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 100);
  builder.SetMaxSendMessageSize(64 << 20);
  front->server = builder.BuildAndStart();
  if (!front->server || front->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", flags.listen, " (address in use or not valid)"));
  }
  if (absl::Status s = WritePortFile("--port_file", flags.port_file, front->port); !s.ok()) {
    return s;
  }
  return front;
}

}  // namespace retrain::server
