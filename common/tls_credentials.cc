#include "common/tls_credentials.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace retrain {

absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream bytes;
  bytes << in.rdbuf();
  if (bytes.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a PEM file"));
  }
  return bytes.str();
}

namespace {

// files.cert_file and files.key_file, read (both are given).
absl::Status ReadKeyPair(const TlsFiles& files, std::string* cert, std::string* key) {
  auto c = ReadPemFile("--tls_cert_file", files.cert_file);
  if (!c.ok()) return c.status();
  auto k = ReadPemFile("--tls_key_file", files.key_file);
  if (!k.ok()) return k.status();
  *cert = *std::move(c);
  *key = *std::move(k);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFrom(
    const TlsFiles& files) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together");
  }
  if (files.cert_file.empty()) {
    if (!files.ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca_file needs TLS: give --tls_cert_file and --tls_key_file too");
    }
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions options(
      files.ca_file.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                            : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (auto s = ReadKeyPair(files, &pair.cert_chain, &pair.private_key); !s.ok()) return s;
  options.pem_key_cert_pairs.push_back(std::move(pair));
  if (!files.ca_file.empty()) {
    auto ca = ReadPemFile("--tls_client_ca_file", files.ca_file);
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFrom(
    const TlsFiles& files) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together");
  }
  if (files.ca_file.empty()) {
    if (!files.cert_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_cert_file needs --tls_ca_file (the CA that signed the server's certificate)");
    }
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions options;
  auto ca = ReadPemFile("--tls_ca_file", files.ca_file);
  if (!ca.ok()) return ca.status();
  options.pem_root_certs = *ca;
  if (!files.cert_file.empty()) {
    if (auto s = ReadKeyPair(files, &options.pem_cert_chain, &options.pem_private_key); !s.ok()) {
      return s;
    }
  }
  return grpc::SslCredentials(options);
}

}  // namespace retrain
