#include "server/access_policy.h"

#include <openssl/crypto.h>

#include "common/bearer_token.h"

namespace retrain::server {

namespace {

// Compares without leaking, through timing, how much of a guess was right.
bool SameToken(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

AccessPolicy::AccessPolicy(std::string client_token, std::string worker_token,
                           bool worker_certificates_required)
    : client_token_(std::move(client_token)),
      worker_token_(std::move(worker_token)),
      worker_certificates_required_(worker_certificates_required) {}

absl::Status AccessPolicy::Check(Caller needed, std::string_view authorization,
                                 bool verified_certificate) const {
  if (needed == Caller::kWorker && worker_certificates_required_ && !verified_certificate) {
    return absl::UnauthenticatedError(
        "this server takes workers over mutual TLS only: start the worker with --tls_cert_file "
        "and --tls_key_file, a certificate signed by the server's --tls_client_ca_file");
  }
  if (!enabled()) return absl::OkStatus();
  const bool client = needed == Caller::kClient;
  const char* const how = client ? "set RETRAIN_TOKEN (or --token_file) to the server's client token"
                                 : "start the worker with its --token_file or RETRAIN_WORKER_TOKEN";
  const std::string token = TokenOfBearerValue(std::string(authorization));
  if (token.empty()) {
    return absl::UnauthenticatedError(
        std::string("this server needs a bearer token (authorization: Bearer <token>): ") + how);
  }
  const std::string& wanted = client ? client_token_ : worker_token_;
  const std::string& other = client ? worker_token_ : client_token_;
  if (SameToken(token, wanted)) return absl::OkStatus();
  if (SameToken(token, other)) {
    return absl::PermissionDeniedError(client ? "a worker token cannot call the client API"
                                              : "a client token cannot call the worker API");
  }
  return absl::UnauthenticatedError(std::string("the bearer token is not valid here: ") + how);
}

}  // namespace retrain::server
