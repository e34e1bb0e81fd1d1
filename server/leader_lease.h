// Leadership among coordinators that share one PostgreSQL database: one
// row (the leader table) names the holder, an epoch that grows by one with
// each new leader, and when the lease ends, in the database's clock. A
// coordinator leads while its lease lasts; the store fences its writes to
// its epoch (postgres_store.h), so a leader that lost the lease can never
// overwrite its successor's work. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/postgres_connection.h"

namespace retrain::server {

struct LeaderLeaseOptions {
  PostgresConnectionOptions connection;
  // Who asks: the address clients and workers reach this coordinator at.
  std::string holder;
  // How long an acquired or renewed lease lasts.
  int lease_ms = 10000;
};

struct LeaderInfo {
  std::string holder;  // "" before anyone led
  int64_t epoch = 0;
  bool current = false;  // false: the lease has ended (or was released)
};

class LeaderLease {
 public:
  // Connects and creates or upgrades the tables (as PostgresStore::Open).
  static absl::StatusOr<std::unique_ptr<LeaderLease>> Open(LeaderLeaseOptions options);

  // Takes the lease when no one holds it (never held, ended or released) and
  // returns the new epoch; 0 when another coordinator holds it. Of several
  // coordinators asking at once, exactly one gets it.
  absl::StatusOr<int64_t> TryAcquire();
  // Extends the lease of `epoch` by lease_ms from now; FAILED_PRECONDITION
  // when that epoch no longer holds it (it ended, or another took over).
  absl::Status Renew(int64_t epoch);
  // Ends the lease of `epoch` now, so that a standby takes over at once.
  absl::Status Release(int64_t epoch);
  // Who holds or last held the lease.
  absl::StatusOr<LeaderInfo> Leader();

  const LeaderLeaseOptions& options() const { return options_; }

 private:
  LeaderLease(LeaderLeaseOptions options, std::unique_ptr<PostgresConnection> db)
      : options_(std::move(options)), db_(std::move(db)) {}
  LeaderLeaseOptions options_;
  std::unique_ptr<PostgresConnection> db_;
};

}  // namespace retrain::server
