#include "server/state_flags.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/postgres_store.h"
#include "server/sqlite_store.h"
#include "server/store_copy.h"

namespace retrain::server {

namespace {

absl::StatusOr<std::string> ReadPassword(const std::string& file) {
  if (file.empty()) return std::string();
  auto text = ReadFile(file);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--state_db_password_file: ", text.status().message()));
  }
  std::string password = *std::move(text);
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  if (password.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--state_db_password_file: ", file, " is empty"));
  }
  return password;
}

absl::StatusOr<std::unique_ptr<PostgresStore>> OpenPostgres(const StateFlags& flags,
                                                            int64_t leader_epoch) {
  PostgresStoreOptions options;
  options.uri = flags.state_db;
  ASSIGN_OR_RETURN(options.password, ReadPassword(flags.state_db_password_file));
  options.leader_epoch = leader_epoch;
  return PostgresStore::Open(std::move(options));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LeaderLease>> OpenLeaderLease(const StateFlags& flags, int lease_ms,
                                                             const std::string& holder,
                                                             const std::function<bool()>& stop) {
  LeaderLeaseOptions options;
  options.connection.uri = flags.state_db;
  ASSIGN_OR_RETURN(options.connection.password, ReadPassword(flags.state_db_password_file));
  // One try per renewal (Leadership retries, and gives up on time).
  options.connection.reconnect_ms = 0;
  options.connection.io_timeout_ms = lease_ms / 4;
  options.holder = holder;
  options.lease_ms = lease_ms;
  for (bool warned = false; !stop(); warned = true) {
    auto lease = LeaderLease::Open(options);
    if (lease.ok() || !IsRetryableStoreError(lease.status())) return lease;
    if (!warned) {
      Logger("server")->warn("waiting for the state database: {}", lease.status().ToString());
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return nullptr;
}

void AddStateFlags(CLI::App& app, StateFlags& flags) {
  app.add_option("--state_dir", flags.state_dir,
                 "Directory of the embedded state database (SQLite) and the jobs' logs");
  app.add_option("--state_db", flags.state_db,
                 "Keep the state in PostgreSQL instead: a connection URI, "
                 "postgresql://USER@HOST:PORT/DB (the password from --state_db_password_file or "
                 "PGPASSFILE, never in the URI)");
  app.add_option("--state_db_password_file", flags.state_db_password_file,
                 "File holding the --state_db user's password");
  app.add_option("--migrate_from_sqlite", flags.migrate_from_sqlite,
                 "Copy the SQLite state of this --state_dir into the empty --state_db, then exit");
}

absl::Status CheckStateFlags(const StateFlags& flags) {
  if (flags.state_dir.empty() == flags.state_db.empty()) {
    return absl::InvalidArgumentError(
        "give one of --state_dir DIR (the embedded SQLite database) and --state_db "
        "postgresql://USER@HOST:PORT/DB");
  }
  if (!flags.migrate_from_sqlite.empty() && flags.state_db.empty()) {
    return absl::InvalidArgumentError(
        "--migrate_from_sqlite copies into PostgreSQL: give --state_db too");
  }
  if (!flags.state_db_password_file.empty() && flags.state_db.empty()) {
    return absl::InvalidArgumentError("--state_db_password_file goes with --state_db");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Store>> OpenStateStore(const StateFlags& flags,
                                                      int64_t leader_epoch) {
  if (!flags.state_db.empty()) return OpenPostgres(flags, leader_epoch);
  return SqliteStore::Open(flags.state_dir);
}

absl::StatusOr<std::string> MigrateFromSqlite(const StateFlags& flags) {
  if (!std::filesystem::exists(flags.migrate_from_sqlite + "/retrain.db")) {
    return absl::NotFoundError(absl::StrCat("--migrate_from_sqlite: no ", flags.migrate_from_sqlite,
                                            "/retrain.db; give the --state_dir of the old server"));
  }
  ASSIGN_OR_RETURN(auto from, SqliteStore::Open(flags.migrate_from_sqlite));
  ASSIGN_OR_RETURN(auto to, OpenPostgres(flags, /*leader_epoch=*/0));
  ASSIGN_OR_RETURN(StoreCopyCounts counts, CopyStore(*from, *to));
  return absl::StrCat("copied ", counts.jobs, " jobs, ", counts.tasks, " tasks, ", counts.workers,
                      " workers, ", counts.log_lines, " log lines and ", counts.training_points,
                      " training points from ", from->Describe(), " to ", to->Describe());
}

}  // namespace retrain::server
