// The coordinator's durable state behind one interface: jobs, build plans,
// tasks, workers and id counters. SqliteStore (sqlite_store.h) is the
// embedded default; tests and other databases implement the same contract.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "retrain/v1/coordinator_state.pb.h"
#include "retrain/v1/job.pb.h"
#include "retrain/v1/worker.pb.h"

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

// The version of the stores' tables. Each store upgrades an older database
// to it when it opens one and refuses a newer one.
// Version 2 added the training points (job_points in PostgreSQL).
inline constexpr int kStoreSchemaVersion = 2;

// The number in a job id "j-<seq>": submission order, and the jobs table's key.
int64_t JobSequence(const std::string& job_id);

// Parses a row's message; DATA_LOSS naming the table when it does not parse.
template <typename Message>
absl::Status ParseStoredRow(const std::string& bytes, Message* message, const char* table) {
  if (!message->ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("state database: a row of table '", table,
                                            "' cannot be parsed; the database is damaged"));
  }
  return absl::OkStatus();
}

// The refusal of a database whose schema is newer than this binary's.
absl::Status NewerSchemaError(const std::string& database, int64_t version);

// For LoadState: `contents.jobs` holds `unfinished` unfinished jobs and then
// finished ones, newest first, read with a limit of `keep`. Sorts the jobs
// by sequence and returns the sequence of the oldest finished job loaded
// when older ones may exist (as many were read as asked for), else -1.
int64_t SortLoadedJobs(StoreContents& contents, size_t unfinished, int64_t keep);

// Not thread-safe: the owner serialises calls. Every method either does all
// it says or returns an error and changes nothing.
class Store {
 public:
  virtual ~Store() = default;
  // What and where the database is, for logs: "SQLite /var/lib/retrain/retrain.db".
  virtual std::string Describe() const = 0;
  // Every unfinished job and the newest `keep_finished` finished ones, with
  // their plans and tasks, the workers and the counters.
  virtual absl::StatusOr<StoreContents> LoadState(int64_t keep_finished) = 0;
  // One job; NotFound naming job_id when there is none.
  virtual absl::StatusOr<retrain::v1::Job> LoadJob(const std::string& job_id) = 0;
  // The id of the job submitted with this request_id; "" when there is none.
  virtual absl::StatusOr<std::string> FindJobIdByRequestId(const std::string& request_id) = 0;
  // Up to `limit` jobs submitted before the job with sequence `before`,
  // newest first.
  virtual absl::StatusOr<std::vector<retrain::v1::Job>> LoadJobsBefore(int64_t before,
                                                                       int limit) = 0;
  // Applies `batch` atomically and durably: once it returns OK, a restart
  // loads what it wrote.
  virtual absl::Status Commit(const StoreBatch& batch) = 0;
  // Appends lines to a job's log (what its tasks printed), once: a retry
  // inside the store after an answer was lost does not append them again.
  virtual absl::Status AppendJobLog(const std::string& job_id,
                                    const std::vector<std::string>& lines) = 0;
  // Up to `max_lines` whole lines of a job's log from line `offset`
  // (0-based); none when it has no log. Unlike the other methods it may be
  // called from any thread, while another call runs: a reader of logs does
  // not wait for the coordinator's writes, nor they for it.
  virtual absl::StatusOr<std::vector<std::string>> ReadJobLog(const std::string& job_id,
                                                              int64_t offset, int max_lines) = 0;
  // A job's training series (what its trainer logged, TrainingPoint), kept
  // beside its log and with the same contract as AppendJobLog and
  // ReadJobLog: appended once, read from point `offset` (0-based) from any
  // thread.
  virtual absl::Status AppendTrainingPoints(
      const std::string& job_id, const std::vector<retrain::v1::TrainingPoint>& points) = 0;
  virtual absl::StatusOr<std::vector<retrain::v1::TrainingPoint>> ReadTrainingPoints(
      const std::string& job_id, int64_t offset, int max_points) = 0;
};

}  // namespace retrain::server
