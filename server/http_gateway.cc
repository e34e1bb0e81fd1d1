#include "server/http_gateway.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "retrain/v1/job_service.pb.h"

namespace retrain::server {

namespace v1 = retrain::v1;

namespace {

// HTTP status for an absl status code, as gRPC's HTTP mapping has it.
int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

void ReplyError(httplib::Response& res, const absl::Status& status) {
  res.status = HttpStatusOf(status.code());
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    res.set_header("WWW-Authenticate", "Bearer");
  }
  const nlohmann::json body = {{"code", static_cast<int>(status.code())},
                               {"message", std::string(status.message())}};
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                  "application/json");
}

void ReplyMessage(httplib::Response& res, const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;  // as the CLI's --output json
  std::string json;
  auto s = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!s.ok()) {
    ReplyError(res, absl::InternalError(std::string(s.message())));
    return;
  }
  json.push_back('\n');
  res.set_content(json, "application/json");
}

template <typename Enum>
absl::StatusOr<Enum> ParseEnum(const std::string& param, const std::string& value,
                               const std::string& prefix, bool (*parse)(const std::string&, Enum*)) {
  std::string name = absl::AsciiStrToUpper(value);
  if (name.rfind(prefix, 0) != 0) name = prefix + name;
  Enum e;
  if (!parse(name, &e)) {
    return absl::InvalidArgumentError(absl::StrCat(param, ": unknown value '", value, "'"));
  }
  return e;
}

// The query parameter `name` as a number from 0 to `most`; 0 when absent.
absl::StatusOr<int64_t> CountParam(const httplib::Request& req, const std::string& name,
                                   int64_t most) {
  if (!req.has_param(name)) return 0;
  int64_t n = 0;
  if (!absl::SimpleAtoi(req.get_param_value(name), &n) || n < 0 || n > most) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": must be a number from 0 to ", most,
                                                   ", not '", req.get_param_value(name), "'"));
  }
  return n;
}

constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();

absl::StatusOr<v1::ListJobsRequest> ListJobsRequestOf(const httplib::Request& req) {
  v1::ListJobsRequest out;
  for (size_t i = 0, n = req.get_param_value_count("state"); i < n; ++i) {
    auto state = ParseEnum<v1::JobState>("state", req.get_param_value("state", i), "JOB_STATE_",
                                         &v1::JobState_Parse);
    if (!state.ok()) return state.status();
    out.add_states(*state);
  }
  if (req.has_param("type")) {
    auto type = ParseEnum<v1::JobType>("type", req.get_param_value("type"), "JOB_TYPE_",
                                       &v1::JobType_Parse);
    if (!type.ok()) return type.status();
    out.set_type(*type);
  }
  ASSIGN_OR_RETURN(const int64_t page_size, CountParam(req, "page_size", kMaxInt32));
  out.set_page_size(static_cast<int32_t>(page_size));
  out.set_page_token(req.get_param_value("page_token"));
  const std::string summary = req.get_param_value("summary_only");
  out.set_summary_only(summary == "1" || absl::AsciiStrToLower(summary) == "true");
  return out;
}

// A paged request for the job in the path (GetJobLogs, GetJobMetrics):
// query `offset` and the page size `page_param`, set through `set_page`.
template <typename Request>
absl::StatusOr<Request> JobPageRequestOf(const httplib::Request& req, const char* page_param,
                                         void (Request::*set_page)(int32_t)) {
  Request out;
  out.set_job_id(req.matches[1]);
  ASSIGN_OR_RETURN(const int64_t offset, CountParam(req, "offset", kMaxInt64));
  ASSIGN_OR_RETURN(const int64_t page, CountParam(req, page_param, kMaxInt32));
  out.set_offset(offset);
  (out.*set_page)(static_cast<int32_t>(page));
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Create(const std::string& tls_cert_file,
                                                                  const std::string& tls_key_file) {
  std::unique_ptr<HttpGateway> gateway(new HttpGateway());
  if (tls_cert_file.empty()) {
    gateway->server_ = std::make_unique<httplib::Server>();
    return gateway;
  }
  auto https = std::make_unique<httplib::SSLServer>(tls_cert_file.c_str(), tls_key_file.c_str());
  if (!https->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls_cert_file, --tls_key_file: cannot load ", tls_cert_file, " and ", tls_key_file,
        " for HTTPS (PEM certificate and its private key)"));
  }
  gateway->server_ = std::move(https);
  return gateway;
}

absl::Status HttpGateway::Serve(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_listen: '", listen, "' is not HOST:PORT (e.g. 127.0.0.1:8080)"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
  } else if (server_->bind_to_port(host, port)) {
    port_ = port;
  }
  if (port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("--http_listen: cannot listen on ", listen, " (address in use or not valid)"));
  }
  httplib::Server* server = server_.get();
  thread_ = std::thread([server] { server->listen_after_bind(); });
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(
    const std::string& listen, const std::string& tls_cert_file, const std::string& tls_key_file,
    Coordinator& coordinator, const AccessPolicy& access, Metrics& metrics,
    std::function<bool()> ready) {
  ASSIGN_OR_RETURN(auto gateway, Create(tls_cert_file, tls_key_file));
  gateway->AddRoutes(coordinator, access, metrics, std::move(ready));
  RETURN_IF_ERROR(gateway->Serve(listen));
  return gateway;
}

absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::StartStandby(
    const std::string& listen, const std::string& tls_cert_file, const std::string& tls_key_file,
    std::function<std::string()> standby_message) {
  ASSIGN_OR_RETURN(auto gateway, Create(tls_cert_file, tls_key_file));
  gateway->server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  auto refuse = [message = std::move(standby_message)](const httplib::Request&,
                                                       httplib::Response& res) {
    ReplyError(res, absl::UnavailableError(message()));
  };
  gateway->server_->Get(".*", refuse);
  RETURN_IF_ERROR(gateway->Serve(listen));
  return gateway;
}

HttpGateway::~HttpGateway() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpGateway::AddRoutes(Coordinator& coordinator, const AccessPolicy& access, Metrics& metrics,
                            std::function<bool()> ready) {
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  // Times and counts each request under its route's name; `client_only`
  // routes check the client token first.
  auto route = [&metrics, &access](std::string name, bool client_only, Handler handler) {
    return [&metrics, &access, name = std::move(name), client_only, handler = std::move(handler)](
               const httplib::Request& req, httplib::Response& res) {
      const auto start = std::chrono::steady_clock::now();
      absl::Status allowed =
          client_only ? access.Check(Caller::kClient, req.get_header_value("Authorization"))
                      : absl::OkStatus();
      if (allowed.ok()) {
        handler(req, res);
      } else {
        ReplyError(res, allowed);
      }
      metrics.ObserveHttp(
          name, res.status,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
  };
  httplib::Server& s = *server_;
  s.Get("/healthz", route("/healthz", false, [](const httplib::Request&, httplib::Response& res) {
          res.set_content("ok\n", "text/plain");
        }));
  s.Get("/readyz",
        route("/readyz", false, [ready](const httplib::Request&, httplib::Response& res) {
          const bool ok = ready();
          res.status = ok ? 200 : 503;
          res.set_content(ok ? "ready\n" : "not ready\n", "text/plain");
        }));
  s.Get("/metrics",
        route("/metrics", true, [&metrics](const httplib::Request&, httplib::Response& res) {
          res.set_content(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8");
        }));
  s.Get("/v1/jobs", route("/v1/jobs", true,
                          [&coordinator](const httplib::Request& req, httplib::Response& res) {
                            auto request = ListJobsRequestOf(req);
                            if (!request.ok()) return ReplyError(res, request.status());
                            auto jobs = coordinator.ListJobs(*request);
                            if (!jobs.ok()) return ReplyError(res, jobs.status());
                            ReplyMessage(res, *jobs);
                          }));
  s.Get(R"(/v1/jobs/([^/]+))",
        route("/v1/jobs/{id}", true,
              [&coordinator](const httplib::Request& req, httplib::Response& res) {
                auto job = coordinator.GetJob(req.matches[1]);
                if (!job.ok()) return ReplyError(res, job.status());
                ReplyMessage(res, *job);
              }));
  s.Get(R"(/v1/jobs/([^/]+)/logs)",
        route("/v1/jobs/{id}/logs", true,
              [&coordinator](const httplib::Request& req, httplib::Response& res) {
                auto request =
                    JobPageRequestOf(req, "max_lines", &v1::GetJobLogsRequest::set_max_lines);
                if (!request.ok()) return ReplyError(res, request.status());
                auto logs = coordinator.GetJobLogs(*request);
                if (!logs.ok()) return ReplyError(res, logs.status());
                ReplyMessage(res, *logs);
              }));
  s.Get(R"(/v1/jobs/([^/]+)/metrics)",
        route("/v1/jobs/{id}/metrics", true,
              [&coordinator](const httplib::Request& req, httplib::Response& res) {
                auto request =
                    JobPageRequestOf(req, "max_points", &v1::GetJobMetricsRequest::set_max_points);
                if (!request.ok()) return ReplyError(res, request.status());
                auto metrics = coordinator.GetJobMetrics(*request);
                if (!metrics.ok()) return ReplyError(res, metrics.status());
                ReplyMessage(res, *metrics);
              }));
  s.Get("/v1/workers",
        route("/v1/workers", true, [&coordinator](const httplib::Request&, httplib::Response& res) {
          v1::ListWorkersResponse workers;
          for (auto& w : coordinator.ListWorkers()) *workers.add_workers() = std::move(w);
          ReplyMessage(res, workers);
        }));
  s.Get("/", route("/", false, [](const httplib::Request&, httplib::Response& res) {
          res.set_content(StatusPageHtml(), "text/html; charset=utf-8");
        }));
  // The job's id is read from the address by the page's script.
  s.Get(R"(/jobs/([^/]+))",
        route("/jobs/{id}", false, [](const httplib::Request&, httplib::Response& res) {
          res.set_content(JobPageHtml(), "text/html; charset=utf-8");
        }));
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      ReplyError(res,
                 absl::NotFoundError(absl::StrCat("no such route: ", req.method, " ", req.path)));
    }
  });
  s.set_payload_max_length(1 << 20);
}

}  // namespace retrain::server
