// One libpq connection to the state database, opened again when it is lost.
// Every wait is bounded: a server that stops answering (a held network
// link, a paused machine) costs at most `io_timeout_ms` of silence before
// the connection is dropped and the call fails with UNAVAILABLE, which
// Retrying() and InTransaction() retry on a new connection until
// `reconnect_ms` has passed. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct pg_conn;
struct pg_result;

namespace retrain::server {

struct PostgresConnectionOptions {
  // libpq connection URI, postgresql://USER@HOST:PORT/DB.
  std::string uri;
  // "" leaves the password to libpq (PGPASSFILE, ~/.pgpass, PGPASSWORD).
  std::string password;
  int reconnect_ms = 30000;
  int io_timeout_ms = 10000;
};

// A query's rows, in libpq's binary format.
class PostgresRows {
 public:
  explicit PostgresRows(pg_result* result) : result_(result) {}
  PostgresRows(PostgresRows&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  PostgresRows& operator=(PostgresRows&& other) noexcept;
  ~PostgresRows();
  int size() const;
  // An integer column (int2, int4 or int8).
  int64_t Int(int row, int column) const;
  // A bytea or text column's bytes.
  std::string Bytes(int row, int column) const;

 private:
  pg_result* result_;
};

// A query parameter: sent as text, or as bytes (bytea).
struct PostgresParam {
  static PostgresParam Int(int64_t v) { return {std::to_string(v), false}; }
  static PostgresParam Text(std::string s) { return {std::move(s), false}; }
  static PostgresParam Bytes(std::string s) { return {std::move(s), true}; }
  std::string value;
  bool binary = false;
};

class PostgresConnection {
 public:
  // Connects once (retrying for reconnect_ms while the server is not up).
  // Refuses a URI that carries a password: argv is readable by every user
  // of the machine.
  static absl::StatusOr<std::unique_ptr<PostgresConnection>> Open(
      PostgresConnectionOptions options);
  ~PostgresConnection();
  PostgresConnection(const PostgresConnection&) = delete;
  PostgresConnection& operator=(const PostgresConnection&) = delete;

  // "PostgreSQL USER@HOST:PORT/DB".
  std::string Describe() const;

  // Runs one statement. UNAVAILABLE when the connection is lost or silent
  // (the connection is then dropped), or the server is shutting down, or
  // the transaction lost a serialization race: each worth running again.
  absl::StatusOr<PostgresRows> Exec(const char* sql, const std::vector<PostgresParam>& params = {});

  // Runs `op` until it returns anything but UNAVAILABLE or reconnect_ms has
  // passed, reconnecting between tries. `op` must be safe to run again.
  absl::Status Retrying(const std::function<absl::Status()>& op);
  // Retrying(BEGIN; body; COMMIT), rolled back when `body` fails.
  absl::Status InTransaction(const std::function<absl::Status()>& body);

 private:
  explicit PostgresConnection(PostgresConnectionOptions options) : options_(std::move(options)) {}
  absl::Status Connect();
  void Drop();
  // Waits for poll() `events` on the socket; false after io_timeout_ms.
  bool WaitForSocket(short events);
  absl::Status Lost(const std::string& what);

  PostgresConnectionOptions options_;
  pg_conn* conn_ = nullptr;
};

// Whether the status is one Retrying() retries.
bool IsRetryableStoreError(const absl::Status& status);

}  // namespace retrain::server
