// TLS for gRPC from PEM files: the coordinator's server credentials and the
// channel credentials of the CLI and the workers.
//
// Without a CA file a channel is plaintext (loopback, or a network the
// operator trusts); with one it is TLS, verifying the server's certificate
// against that CA; with a certificate and key as well it also presents them
// (mutual TLS, as workers do where the server asks for it).
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace retrain {

struct TlsFiles {
  std::string cert_file;  // PEM certificate chain
  std::string key_file;   // PEM private key
  std::string ca_file;    // PEM CA certificates to verify the peer
};

// The file's bytes, or INVALID_ARGUMENT naming `flag` and the file.
absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path);

// Server side: plaintext without cert_file; TLS with cert_file and key_file;
// with ca_file too, clients may present certificates, which are verified
// against it (a call can then tell whether its peer presented a valid one:
// PeerHasVerifiedCertificate). Flags named in errors: --tls_cert_file,
// --tls_key_file, --tls_client_ca_file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFrom(
    const TlsFiles& files);

// Client side: plaintext without ca_file; else TLS verifying the server
// against ca_file, presenting cert_file and key_file when given. Flags named
// in errors: --tls_ca_file, --tls_cert_file, --tls_key_file.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFrom(
    const TlsFiles& files);

}  // namespace retrain
