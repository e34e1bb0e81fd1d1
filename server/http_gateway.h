// The coordinator over HTTP, beside gRPC (cpp-httplib):
//   GET /healthz        200 while the process serves (liveness)
//   GET /readyz         200 once the state database is open and gRPC
//                       serves, 503 before and while stopping (readiness)
//   GET /metrics        Prometheus text format (server/metrics.h)
//   GET /v1/jobs        ListJobs as JSON (protobuf's JSON mapping, field
//                       names as in the .proto files, as `retrain --output
//                       json` prints them); query:
//                       state (repeatable), type, page_size, page_token,
//                       summary_only
//   GET /v1/jobs/{id}   GetJob as JSON
//   GET /v1/jobs/{id}/logs     GetJobLogs as JSON; query: offset,
//                              max_lines
//   GET /v1/jobs/{id}/metrics  GetJobMetrics as JSON (the job's training
//                              series); query: offset, max_points
//   GET /v1/workers     ListWorkers as JSON
//   GET /               a status page of jobs and workers that refreshes
//                       itself (one HTML file, no external assets)
//   GET /jobs/{id}      a job's page: its history, results, charts of its
//                       training series, log and checkpoints, following
//                       the job while it runs (one HTML file)
// Errors are JSON {"code": <gRPC code>, "message": ...} with the matching
// HTTP status (400, 401, 403, 404, ...): an unknown job is 404 naming it, a
// bad query parameter 400 naming the parameter. Every route but the health
// checks and the pages themselves needs the client token (AccessPolicy) as
// "Authorization: Bearer <token>".
//
// Thread-safe; requests run on cpp-httplib's thread pool.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/access_policy.h"
#include "server/coordinator.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}

namespace retrain::server {

class HttpGateway {
 public:
  // Binds `listen` (HOST:PORT, port 0 picks one) and serves on a thread of
  // its own: HTTPS when `tls_cert_file` and `tls_key_file` (PEM) are given.
  // The references must outlive the gateway. `ready` answers /readyz.
  static absl::StatusOr<std::unique_ptr<HttpGateway>> Start(
      const std::string& listen, const std::string& tls_cert_file,
      const std::string& tls_key_file, Coordinator& coordinator, const AccessPolicy& access,
      Metrics& metrics, std::function<bool()> ready);
  // What a coordinator standing by serves (another leads, see
  // leadership.h): /healthz 200, and every other route 503 with
  // `standby_message()`, which names the leader.
  static absl::StatusOr<std::unique_ptr<HttpGateway>> StartStandby(
      const std::string& listen, const std::string& tls_cert_file,
      const std::string& tls_key_file, std::function<std::string()> standby_message);
  ~HttpGateway();  // stops serving
  HttpGateway(const HttpGateway&) = delete;
  HttpGateway& operator=(const HttpGateway&) = delete;

  int port() const { return port_; }

 private:
  HttpGateway() = default;
  static absl::StatusOr<std::unique_ptr<HttpGateway>> Create(const std::string& tls_cert_file,
                                                             const std::string& tls_key_file);
  // Binds `listen` and serves on thread_.
  absl::Status Serve(const std::string& listen);
  void AddRoutes(Coordinator& coordinator, const AccessPolicy& access, Metrics& metrics,
                 std::function<bool()> ready);

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// The pages' HTML: the status page (status_page.cc) and a job's page
// (job_page.cc), which reads the job's id from its address.
const std::string& StatusPageHtml();
const std::string& JobPageHtml();

}  // namespace retrain::server
