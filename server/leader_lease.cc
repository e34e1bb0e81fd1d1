#include "server/leader_lease.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/postgres_store.h"

namespace retrain::server {

namespace {

using P = PostgresParam;

// The lease's end, lease_ms ($2) from now in the database's clock.
constexpr const char* kLeaseEnd = "clock_timestamp() + $2::float8 * interval '1 millisecond'";

}  // namespace

absl::StatusOr<std::unique_ptr<LeaderLease>> LeaderLease::Open(LeaderLeaseOptions options) {
  ASSIGN_OR_RETURN(auto db, PostgresConnection::Open(options.connection));
  RETURN_IF_ERROR(UpgradePostgresSchema(*db));
  return std::unique_ptr<LeaderLease>(new LeaderLease(std::move(options), std::move(db)));
}

absl::StatusOr<int64_t> LeaderLease::TryAcquire() {
  int64_t epoch = 0;
  // Concurrent takers queue on the row lock; each then sees the winner's
  // unexpired lease (READ COMMITTED re-reads the row) and changes nothing.
  RETURN_IF_ERROR(db_->Retrying([&]() -> absl::Status {
    ASSIGN_OR_RETURN(PostgresRows rows,
                     db_->Exec(absl::StrCat("UPDATE leader SET epoch = epoch + 1, holder = $1, "
                                            "expires_at = ",
                                            kLeaseEnd,
                                            " WHERE id = 1 AND expires_at <= clock_timestamp() "
                                            "RETURNING epoch")
                                   .c_str(),
                               {P::Text(options_.holder), P::Int(options_.lease_ms)}));
    epoch = rows.size() > 0 ? rows.Int(0, 0) : 0;
    return absl::OkStatus();
  }));
  return epoch;
}

absl::Status LeaderLease::Renew(int64_t epoch) {
  int renewed = 0;
  RETURN_IF_ERROR(db_->Retrying([&]() -> absl::Status {
    ASSIGN_OR_RETURN(PostgresRows rows,
                     db_->Exec(absl::StrCat("UPDATE leader SET expires_at = ", kLeaseEnd,
                                            " WHERE id = 1 AND epoch = $1 AND "
                                            "expires_at > clock_timestamp() RETURNING epoch")
                                   .c_str(),
                               {P::Int(epoch), P::Int(options_.lease_ms)}));
    renewed = rows.size();
    return absl::OkStatus();
  }));
  if (renewed == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the leader lease of epoch ", epoch, " has ended or passed to another"));
  }
  return absl::OkStatus();
}

absl::Status LeaderLease::Release(int64_t epoch) {
  return db_->Retrying([&]() -> absl::Status {
    return db_
        ->Exec("UPDATE leader SET expires_at = clock_timestamp() WHERE id = 1 AND epoch = $1",
               {P::Int(epoch)})
        .status();
  });
}

absl::StatusOr<LeaderInfo> LeaderLease::Leader() {
  LeaderInfo info;
  RETURN_IF_ERROR(db_->Retrying([&]() -> absl::Status {
    ASSIGN_OR_RETURN(PostgresRows rows,
                     db_->Exec("SELECT holder, epoch, (expires_at > clock_timestamp())::int "
                               "FROM leader WHERE id = 1"));
    if (rows.size() == 0) return absl::DataLossError("state database: the leader row is missing");
    info.holder = rows.Bytes(0, 0);
    info.epoch = rows.Int(0, 1);
    info.current = rows.Int(0, 2) != 0;
    return absl::OkStatus();
  }));
  return info;
}

}  // namespace retrain::server
