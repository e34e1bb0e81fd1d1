#include "server/postgres_connection.h"

#include <endian.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace retrain::server {

namespace {

using Clock = std::chrono::steady_clock;

// SQLSTATEs worth running again: the connection failed (class 08), the
// server is shutting down or starting (57P01..57P03), or a concurrent
// transaction won a race (40001, 40P01).
bool RetryableSqlState(const char* state) {
  if (state == nullptr) return false;
  const std::string s = state;
  return s.rfind("08", 0) == 0 || s == "57P01" || s == "57P02" || s == "57P03" || s == "40001" ||
         s == "40P01";
}

bool IsError(const PGresult* r) {
  return PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK;
}

std::string Trimmed(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A failed connection's error with verbose verbosity ("connection to server
// at ... failed: FATAL:  28P01: password authentication failed ...\nLOCATION:
// ..."): its SQLSTATE ("" when the server sent none), and the message without
// the code and the source location.
struct StartupError {
  std::string sql_state;
  std::string message;
};

StartupError ParseStartupError(const std::string& verbose) {
  StartupError e{"", verbose.substr(0, verbose.find("\nLOCATION:"))};
  for (const char* severity : {"FATAL:  ", "ERROR:  "}) {
    const size_t at = e.message.find(severity);
    if (at == std::string::npos) continue;
    const size_t code = at + std::strlen(severity);
    // Five characters of [0-9A-Z], then ": ".
    if (e.message.size() >= code + 7 && e.message.compare(code + 5, 2, ": ") == 0 &&
        std::all_of(e.message.begin() + code, e.message.begin() + code + 5,
                    [](char c) { return std::isdigit(c) || std::isupper(c); })) {
      e.sql_state = e.message.substr(code, 5);
      e.message.erase(code, 7);
    }
    break;
  }
  return e;
}

}  // namespace

bool IsRetryableStoreError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable;
}

PostgresRows& PostgresRows::operator=(PostgresRows&& other) noexcept {
  std::swap(result_, other.result_);
  return *this;
}

PostgresRows::~PostgresRows() { PQclear(result_); }

int PostgresRows::size() const { return PQntuples(result_); }

int64_t PostgresRows::Int(int row, int column) const {
  const char* p = PQgetvalue(result_, row, column);
  switch (PQgetlength(result_, row, column)) {
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return static_cast<int16_t>(be16toh(v));
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return static_cast<int32_t>(be32toh(v));
    }
    case 8: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<int64_t>(be64toh(v));
    }
    default:
      return 0;
  }
}

std::string PostgresRows::Bytes(int row, int column) const {
  return std::string(PQgetvalue(result_, row, column), PQgetlength(result_, row, column));
}

absl::StatusOr<std::unique_ptr<PostgresConnection>> PostgresConnection::Open(
    PostgresConnectionOptions options) {
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(options.uri.c_str(), &error);
  if (parsed == nullptr) {
    std::string message = Trimmed(error);
    PQfreemem(error);
    return absl::InvalidArgumentError(absl::StrCat("--state_db: not a PostgreSQL connection URI (",
                                                   message,
                                                   "); expected postgresql://USER@HOST:PORT/DB"));
  }
  bool has_password = false;
  for (const PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (std::strcmp(o->keyword, "password") == 0 && o->val != nullptr && *o->val != '\0') {
      has_password = true;
    }
  }
  PQconninfoFree(parsed);
  if (has_password) {
    return absl::InvalidArgumentError(
        "--state_db: the URI holds a password, which every user of this machine can read in "
        "the process list; put it in --state_db_password_file or a PGPASSFILE instead");
  }
  std::unique_ptr<PostgresConnection> c(new PostgresConnection(std::move(options)));
  RETURN_IF_ERROR(c->Retrying([&] { return c->Connect(); }));
  return c;
}

PostgresConnection::~PostgresConnection() { Drop(); }

std::string PostgresConnection::Describe() const {
  std::string where = options_.uri;
  const size_t scheme = where.find("://");
  if (scheme != std::string::npos) where = where.substr(scheme + 3);
  return "PostgreSQL " + where;
}

void PostgresConnection::Drop() {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
}

absl::Status PostgresConnection::Connect() {
  Drop();
  // dbname first: the URI it expands into is overridden by what follows.
  const char* keywords[] = {"dbname", "password", "application_name", nullptr};
  const char* values[] = {options_.uri.c_str(),
                          options_.password.empty() ? nullptr : options_.password.c_str(),
                          "retrain-server", nullptr};
  conn_ = PQconnectStartParams(keywords, values, /*expand_dbname=*/1);
  if (conn_ == nullptr) return absl::ResourceExhaustedError("state database: out of memory");
  // Errors with their SQLSTATE, so that a refusal is told by its code, not
  // by its (translated) text.
  PQsetErrorVerbosity(conn_, PQERRORS_VERBOSE);
  // Polled here rather than with libpq's connect_timeout (whole seconds,
  // at least 2), so that a silent server costs io_timeout_ms.
  for (PostgresPollingStatusType state = PGRES_POLLING_WRITING;
       state != PGRES_POLLING_OK && state != PGRES_POLLING_FAILED;) {
    if (PQstatus(conn_) == CONNECTION_BAD) break;
    if (!WaitForSocket(state == PGRES_POLLING_WRITING ? POLLOUT : POLLIN)) {
      return Lost(absl::StrCat("cannot connect: no answer for ", options_.io_timeout_ms, " ms"));
    }
    state = PQconnectPoll(conn_);
  }
  if (PQstatus(conn_) != CONNECTION_OK) {
    const StartupError error = ParseStartupError(Trimmed(PQerrorMessage(conn_)));
    const bool needs_password = PQconnectionNeedsPassword(conn_) != 0;
    Drop();
    // No retry helps a password missing (libpq's own refusal) or wrong, a
    // role not allowed in (class 28: invalid authorization) or a database
    // that does not exist (3D000).
    const bool refused =
        needs_password || error.sql_state.rfind("28", 0) == 0 || error.sql_state == "3D000";
    const std::string text = absl::StrCat(Describe(), ": cannot connect: ", error.message,
                                          error.sql_state.empty() ? "" : " (SQLSTATE ",
                                          error.sql_state, error.sql_state.empty() ? "" : ")");
    return refused ? absl::FailedPreconditionError(text) : absl::UnavailableError(text);
  }
  PQsetErrorVerbosity(conn_, PQERRORS_DEFAULT);
  PQsetnonblocking(conn_, 1);
  // Notices ("relation already exists, skipping") are not for the log.
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
  return absl::OkStatus();
}

absl::Status PostgresConnection::Lost(const std::string& what) {
  const std::string message = absl::StrCat(Describe(), ": ", what);
  Drop();
  return absl::UnavailableError(message);
}

bool PostgresConnection::WaitForSocket(short events) {
  pollfd fd{PQsocket(conn_), events, 0};
  int rc;
  do {
    rc = poll(&fd, 1, options_.io_timeout_ms);
  } while (rc < 0 && errno == EINTR);
  return rc > 0;
}

absl::StatusOr<PostgresRows> PostgresConnection::Exec(const char* sql,
                                                      const std::vector<PostgresParam>& params) {
  if (conn_ == nullptr) RETURN_IF_ERROR(Connect());
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  for (const auto& p : params) {
    values.push_back(p.value.data());
    lengths.push_back(static_cast<int>(p.value.size()));
    formats.push_back(p.binary ? 1 : 0);
  }
  if (!PQsendQueryParams(conn_, sql, static_cast<int>(params.size()), nullptr, values.data(),
                         lengths.data(), formats.data(), /*resultFormat=*/1)) {
    return Lost(absl::StrCat("cannot send: ", Trimmed(PQerrorMessage(conn_))));
  }
  for (int rc; (rc = PQflush(conn_)) != 0;) {
    if (rc < 0 || !WaitForSocket(POLLIN | POLLOUT)) return Lost("no answer while sending");
    if (!PQconsumeInput(conn_)) return Lost(Trimmed(PQerrorMessage(conn_)));
  }
  PGresult* kept = nullptr;  // the first error, else the last result
  for (;;) {
    while (PQisBusy(conn_)) {
      if (!WaitForSocket(POLLIN)) {
        PQclear(kept);
        return Lost(absl::StrCat("no answer for ", options_.io_timeout_ms, " ms"));
      }
      if (!PQconsumeInput(conn_)) {
        PQclear(kept);
        return Lost(Trimmed(PQerrorMessage(conn_)));
      }
    }
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) break;
    if (kept != nullptr && IsError(kept)) {
      PQclear(r);
    } else {
      PQclear(kept);
      kept = r;
    }
  }
  if (kept == nullptr) return Lost("no result");
  if (!IsError(kept)) return PostgresRows(kept);
  const char* state = PQresultErrorField(kept, PG_DIAG_SQLSTATE);
  const std::string message = absl::StrCat(Describe(), ": ", Trimmed(PQresultErrorMessage(kept)));
  const bool retry = RetryableSqlState(state) || PQstatus(conn_) == CONNECTION_BAD;
  PQclear(kept);
  if (PQstatus(conn_) == CONNECTION_BAD) Drop();
  return retry ? absl::UnavailableError(message) : absl::InternalError(message);
}

absl::Status PostgresConnection::Retrying(const std::function<absl::Status()>& op) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.reconnect_ms);
  auto backoff = std::chrono::milliseconds(50);
  for (;;) {
    absl::Status s = op();
    if (!IsRetryableStoreError(s) || Clock::now() + backoff > deadline) return s;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

absl::Status PostgresConnection::InTransaction(const std::function<absl::Status()>& body) {
  return Retrying([&]() -> absl::Status {
    RETURN_IF_ERROR(Exec("BEGIN").status());
    absl::Status s = body();
    if (!s.ok()) {
      if (conn_ != nullptr) Exec("ROLLBACK").IgnoreError();
      return s;
    }
    return Exec("COMMIT").status();
  });
}

}  // namespace retrain::server
