// The coordinator's durable state: jobs, build plans, tasks and workers in
// one SQLite database (WAL, synchronous=FULL), so that a killed coordinator
// restarted on the same state directory loses nothing it acknowledged.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "retrain/v1/coordinator_state.pb.h"
#include "retrain/v1/job.pb.h"
#include "retrain/v1/worker.pb.h"

struct sqlite3;

namespace retrain::server {

// A set of writes applied atomically: all or none.
struct StoreBatch {
  std::vector<const retrain::v1::Job*> jobs;
  std::vector<std::pair<std::string, const retrain::v1::BuildPlan*>> plans;
  std::vector<const retrain::v1::TaskRecord*> tasks;
  std::vector<const retrain::v1::Worker*> workers;
  // Deletes every task row of these jobs (after they end).
  std::vector<std::string> drop_tasks_of_jobs;
  // Deletes these task rows.
  std::vector<int64_t> drop_tasks;
  // Named counters (next ids) to persist.
  std::vector<std::pair<std::string, int64_t>> counters;
  bool empty() const {
    return jobs.empty() && plans.empty() && tasks.empty() && workers.empty() &&
           drop_tasks_of_jobs.empty() && drop_tasks.empty() && counters.empty();
  }
};

// What a coordinator needs at start. Finished jobs beyond the newest
// `keep_finished` are only counted, through the state index, not read.
struct StoreContents {
  // Every unfinished job and the newest `keep_finished` finished ones, in
  // submission order.
  std::vector<retrain::v1::Job> jobs;
  // The other finished jobs, by (type, state), and the sequence of the
  // newest of them (-1: none).
  std::map<std::pair<retrain::v1::JobType, retrain::v1::JobState>, int64_t> finished_not_loaded;
  int64_t newest_not_loaded_seq = -1;
  std::vector<std::pair<std::string, retrain::v1::BuildPlan>> plans;
  std::vector<retrain::v1::TaskRecord> tasks;  // in id order
  std::vector<retrain::v1::Worker> workers;
  std::map<std::string, int64_t> counters;
};

// The number in a job id "j-<seq>": submission order, and the jobs table's key.
int64_t JobSequence(const std::string& job_id);

// Not thread-safe: the owner serialises calls.
class SqliteStore {
 public:
  // Opens or creates `<state_dir>/retrain.db`, creating `state_dir`. A
  // database written before the jobs table had its type, state and
  // request_id columns gets them, filled from each row, in one transaction.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& state_dir);
  ~SqliteStore();
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  absl::StatusOr<StoreContents> LoadState(int64_t keep_finished);
  // One job; NotFound naming job_id when there is none.
  absl::StatusOr<retrain::v1::Job> LoadJob(const std::string& job_id);
  // The id of the job submitted with this request_id; "" when there is none.
  absl::StatusOr<std::string> FindJobIdByRequestId(const std::string& request_id);
  // Up to `limit` jobs submitted before the job with sequence `before`,
  // newest first.
  absl::StatusOr<std::vector<retrain::v1::Job>> LoadJobsBefore(int64_t before, int limit);
  absl::Status Commit(const StoreBatch& batch);

 private:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  // Runs `body` in one write transaction: committed when it returns OK,
  // rolled back otherwise.
  absl::Status InTransaction(const std::function<absl::Status()>& body);
  absl::Status AddJobColumnsIfMissing();
  sqlite3* db_;
};

}  // namespace retrain::server
