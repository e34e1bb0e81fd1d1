// Who may call what: a shared-secret token for clients (the JobService API,
// the HTTP job views and metrics) and a separate one for workers (the
// WorkerService API). Health checks need neither.
//
// Without tokens every call is let through; the server then listens on
// loopback only (server/main.cc enforces that). Thread-safe: constant after
// construction.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace retrain::server {

enum class Caller { kClient, kWorker };

class AccessPolicy {
 public:
  // Both tokens or neither: "" for none. `worker_certificates_required`:
  // worker calls must also come over mutual TLS with a client certificate
  // the server verified (--tls_client_ca_file).
  AccessPolicy(std::string client_token, std::string worker_token,
               bool worker_certificates_required = false);

  bool enabled() const { return !client_token_.empty(); }

  // Whether a request with `authorization` (its "Bearer <token>" header or
  // metadata value, "" when it has none) may act as `needed`;
  // `verified_certificate`: its peer presented a client certificate the
  // TLS layer verified. UNAUTHENTICATED for a missing or unknown token (or
  // certificate), PERMISSION_DENIED for the other caller's token; the
  // message says what to set.
  absl::Status Check(Caller needed, std::string_view authorization,
                     bool verified_certificate = false) const;

 private:
  const std::string client_token_;
  const std::string worker_token_;
  const bool worker_certificates_required_;
};

}  // namespace retrain::server
