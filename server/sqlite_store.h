// The embedded Store (store.h): jobs, build plans, tasks and workers in
// one SQLite database (WAL, synchronous=FULL), so that a killed coordinator
// restarted on the same state directory loses nothing it acknowledged. Job
// logs are files beside it, <state_dir>/logs/<job id>.log, one line a line,
// and so are training series, <state_dir>/logs/<job id>.points, one
// TrainingPoint a line (its bytes in base64).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store.h"

struct sqlite3;

namespace retrain::server {

class SqliteStore : public Store {
 public:
  // Opens or creates `<state_dir>/retrain.db`, creating `state_dir`, and
  // upgrades its tables to kStoreSchemaVersion (PRAGMA user_version); a
  // newer database is refused. A database written before the jobs table had
  // its type, state and request_id columns gets them, filled from each row,
  // in one transaction.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& state_dir);
  ~SqliteStore();
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

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
  SqliteStore(sqlite3* db, std::string state_dir) : db_(db), state_dir_(std::move(state_dir)) {}
  absl::Status Exec(const char* sql);
  // Runs `body` in one write transaction: committed when it returns OK,
  // rolled back otherwise.
  absl::Status InTransaction(const std::function<absl::Status()>& body);
  absl::Status Upgrade();
  std::string JobLogPath(const std::string& job_id) const;
  std::string TrainingPointsPath(const std::string& job_id) const;
  absl::Status AddJobColumnsIfMissing();
  sqlite3* db_;
  const std::string state_dir_;
};

}  // namespace retrain::server
