// A real PostgreSQL server for one test: Debian's postgres in a temporary
// directory, on a free loopback port, run as an unprivileged user (the
// "postgres" account when the test runs as root), with password
// authentication. Its cluster is a copy of one made by initdb once per
// machine and kept in the system temp dir (retrain-test-postgres-template-*).
// Killed and removed when the owner goes away. Not thread-safe.
#pragma once

#include <memory>
#include <string>

#include "tests/support/process.h"

namespace retrain::testing {

class PostgresServer {
 public:
  // Initialises a cluster with user `retrain` and database `retrain` and
  // starts it; fails the test (ADD_FAILURE) when it cannot.
  PostgresServer();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Whether the server came up (the test should stop when not).
  bool ok() const { return ok_; }
  int port() const { return port_; }
  // postgresql://retrain@127.0.0.1:PORT/retrain, without the password.
  std::string uri() const;
  // A file holding the password (for --state_db_password_file).
  const std::string& password_file() const { return password_file_; }
  const std::string& password() const { return password_; }

  // A fresh, empty database on this server, and its URI: one per test that
  // shares the server.
  std::string NewDatabase(const std::string& name);
  std::string DatabaseUri(const std::string& database) const;

  // Stops the server the way a crash would (SIGKILL) or cleanly (SIGINT,
  // "fast" shutdown), and starts it again on the same port and data.
  void Kill();
  void Stop();
  void Start();
  // psql as the superuser; returns its output (fails the test on error).
  std::string Sql(const std::string& sql, const std::string& database = "retrain");

  std::string Log() const;

 private:
  bool WaitUntilReady();
  // The cluster in data_dir_: made by initdb (and kept as the template), or
  // copied from the template. False after reporting a failure.
  bool InitCluster();
  bool SaveTemplate(const std::string& directory);
  bool CopyTemplate(const std::string& directory);
  void WritePassword();
  TempDir dir_;
  std::string data_dir_;
  std::string bin_dir_;
  std::string password_;
  std::string password_file_;
  int uid_ = -1;
  int port_ = 0;
  bool ok_ = false;
  std::unique_ptr<Process> server_;
};

}  // namespace retrain::testing
