// The Store (store.h) in PostgreSQL, for coordinators whose state must
// outlive their machine: the same tables as SqliteStore, in a database the
// operator runs. A lost connection (PostgreSQL restarted, a network blip) is
// retried on a new connection for `reconnect_ms` before an operation fails;
// every write is idempotent, so a transaction whose COMMIT went unanswered
// is safely run again.
//
// Fencing: a store opened with a leader epoch (LeaderLease,
// leader_lease.h) writes only while that epoch still holds the lease. Each
// transaction first locks the lease row for share and checks it, so a
// coordinator that lost its lease (paused, cut off) can never overwrite its
// successor's work: its commit fails with FAILED_PRECONDITION, "fenced".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "server/store.h"

namespace retrain::server {

class PostgresConnection;
class PostgresRows;
struct PostgresParam;

struct PostgresStoreOptions {
  // A libpq connection URI, postgresql://USER@HOST:PORT/DB, without a
  // password (libpq also reads PGPASSFILE and the PG* variables).
  std::string uri;
  // The password; "" leaves it to libpq (PGPASSFILE, ~/.pgpass).
  std::string password;
  // How long a lost connection is retried before an operation fails.
  int reconnect_ms = 30000;
  // > 0: write only while this epoch holds the leader lease.
  int64_t leader_epoch = 0;
};

// Creates the tables or upgrades them to kStoreSchemaVersion, one
// coordinator at a time (an advisory lock); refuses a database whose schema
// is newer than this binary's.
absl::Status UpgradePostgresSchema(PostgresConnection& db);

class PostgresStore : public Store {
 public:
  // Connects, creates the tables or upgrades them to kStoreSchemaVersion
  // (one coordinator at a time, under an advisory lock); refuses a database
  // whose schema is newer than this binary's.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(PostgresStoreOptions options);
  ~PostgresStore() override;

  std::string Describe() const override;
  absl::StatusOr<StoreContents> LoadState(int64_t keep_finished) override;
  absl::StatusOr<retrain::v1::Job> LoadJob(const std::string& job_id) override;
  absl::StatusOr<std::string> FindJobIdByRequestId(const std::string& request_id) override;
  absl::StatusOr<std::vector<retrain::v1::Job>> LoadJobsBefore(int64_t before, int limit) override;
  absl::Status Commit(const StoreBatch& batch) override;
  absl::Status AppendJobLog(const std::string& job_id,
                            const std::vector<std::string>& lines) override;
  absl::StatusOr<std::vector<std::string>> ReadJobLog(const std::string& job_id, int64_t offset,
                                                      int max_lines) override;
  absl::Status AppendTrainingPoints(const std::string& job_id,
                                    const std::vector<retrain::v1::TrainingPoint>& points) override;
  absl::StatusOr<std::vector<retrain::v1::TrainingPoint>> ReadTrainingPoints(
      const std::string& job_id, int64_t offset, int max_points) override;

 private:
  PostgresStore(PostgresStoreOptions options, std::unique_ptr<PostgresConnection> connection);
  // OK when writes are allowed: no epoch given, or it still holds the lease.
  absl::Status CheckFence();
  // Appends `values` to a job's rows of `table` (job_logs, job_points),
  // numbered on from its last in `number_column`, once (see AppendJobLog).
  absl::Status AppendRows(const char* table, const char* number_column, const char* value_column,
                          const std::string& job_id, const std::vector<PostgresParam>& values);
  // Up to `limit` of a job's `value_column`s from number `offset`, in
  // order, on reader_.
  absl::StatusOr<PostgresRows> ReadRows(const char* table, const char* number_column,
                                        const char* value_column, const std::string& job_id,
                                        int64_t offset, int limit);
  PostgresStoreOptions options_;
  std::unique_ptr<PostgresConnection> db_;
  // ReadRows' own connection, opened on its first call: reads of logs and
  // series run beside the writes on db_ (one libpq connection serves one thread).
  Mutex reader_mu_;
  std::unique_ptr<PostgresConnection> reader_ ABSL_GUARDED_BY(reader_mu_);
};

}  // namespace retrain::server
