// retrain-server's flags for where the state lives: the embedded SQLite
// database in --state_dir, or PostgreSQL at --state_db.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/leader_lease.h"
#include "server/store.h"

namespace CLI {
class App;
}

namespace retrain::server {

struct StateFlags {
  std::string state_dir;
  std::string state_db;
  std::string state_db_password_file;
  std::string migrate_from_sqlite;
};

void AddStateFlags(CLI::App& app, StateFlags& flags);

// INVALID_ARGUMENT naming the flags unless exactly one of --state_dir and
// --state_db is given, and --migrate_from_sqlite only with --state_db.
absl::Status CheckStateFlags(const StateFlags& flags);

// Opens the store the flags name; `leader_epoch` > 0 fences PostgreSQL
// writes to that lease epoch (postgres_store.h).
absl::StatusOr<std::unique_ptr<Store>> OpenStateStore(const StateFlags& flags,
                                                      int64_t leader_epoch = 0);

// The leader lease in --state_db, taken as `holder` for `lease_ms`. Each
// of its calls tries once, waiting at most a quarter of the lease for an
// answer (Leadership retries). While the database cannot be
// reached it tries again every second; null when `stop` returns true
// first.
absl::StatusOr<std::unique_ptr<LeaderLease>> OpenLeaderLease(const StateFlags& flags, int lease_ms,
                                                             const std::string& holder,
                                                             const std::function<bool()>& stop);

// --migrate_from_sqlite: copies the SQLite state into the empty --state_db
// and says what it copied.
absl::StatusOr<std::string> MigrateFromSqlite(const StateFlags& flags);

}  // namespace retrain::server
