#include "server/postgres_store.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/postgres_connection.h"

namespace retrain::server {

namespace {

using P = PostgresParam;

// Statements that take the database from version i to i + 1, in order.
const std::vector<std::vector<const char*>>& Migrations() {
  static const auto* migrations = new std::vector<std::vector<const char*>>{
      {
          // 0 -> 1: the tables of SqliteStore, and the leader lease.
          "CREATE TABLE jobs(seq BIGINT PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
          "type INTEGER NOT NULL, state INTEGER NOT NULL, request_id TEXT NOT NULL DEFAULT '', "
          "job BYTEA NOT NULL)",
          "CREATE INDEX jobs_by_state ON jobs(state, type)",
          "CREATE INDEX jobs_by_request_id ON jobs(request_id) WHERE request_id <> ''",
          "CREATE TABLE plans(job_id TEXT PRIMARY KEY, plan BYTEA NOT NULL)",
          "CREATE TABLE tasks(id BIGINT PRIMARY KEY, job_id TEXT NOT NULL, record BYTEA NOT NULL)",
          "CREATE INDEX tasks_by_job ON tasks(job_id)",
          "CREATE TABLE counters(name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
          "CREATE TABLE workers(id TEXT PRIMARY KEY, worker BYTEA NOT NULL)",
          // One row: who leads, under which epoch, until when (the
          // database's clock).
          "CREATE TABLE leader(id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, "
          "holder TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)",
          "INSERT INTO leader VALUES (1, 0, '', 'epoch')",
          "CREATE TABLE job_logs(job_id TEXT NOT NULL, line_no BIGINT NOT NULL, "
          "line TEXT NOT NULL, PRIMARY KEY(job_id, line_no))",
      },
      {
          // 1 -> 2: training series, one TrainingPoint a row.
          "CREATE TABLE job_points(job_id TEXT NOT NULL, point_no BIGINT NOT NULL, "
          "point BYTEA NOT NULL, PRIMARY KEY(job_id, point_no))",
      },
  };
  return *migrations;
}

// Serialises schema changes between coordinators opening one database.
constexpr const char* kSchemaLock = "SELECT pg_advisory_xact_lock(7270373761)";

// The final states (IsFinalState) as $1..$3.
constexpr const char* kPostgresFinalStates = "($1, $2, $3)";
std::vector<P> FinalStates() {
  return {P::Int(retrain::v1::JOB_STATE_SUCCEEDED), P::Int(retrain::v1::JOB_STATE_FAILED),
          P::Int(retrain::v1::JOB_STATE_CANCELLED)};
}

PostgresConnectionOptions ConnectionOptions(const PostgresStoreOptions& options) {
  PostgresConnectionOptions connection;
  connection.uri = options.uri;
  connection.password = options.password;
  connection.reconnect_ms = options.reconnect_ms;
  return connection;
}

template <typename Message>
absl::Status ParseRows(const PostgresRows& rows, int column, const char* table,
                       std::vector<Message>* out) {
  for (int i = 0; i < rows.size(); ++i) {
    RETURN_IF_ERROR(ParseStoredRow(rows.Bytes(i, column), &out->emplace_back(), table));
  }
  return absl::OkStatus();
}

}  // namespace

PostgresStore::PostgresStore(PostgresStoreOptions options,
                             std::unique_ptr<PostgresConnection> connection)
    : options_(std::move(options)), db_(std::move(connection)) {}

PostgresStore::~PostgresStore() = default;

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(PostgresStoreOptions options) {
  ASSIGN_OR_RETURN(auto connection, PostgresConnection::Open(ConnectionOptions(options)));
  std::unique_ptr<PostgresStore> store(
      new PostgresStore(std::move(options), std::move(connection)));
  RETURN_IF_ERROR(UpgradePostgresSchema(*store->db_));
  return store;
}

absl::Status UpgradePostgresSchema(PostgresConnection& db) {
  return db.InTransaction([&]() -> absl::Status {
    RETURN_IF_ERROR(db.Exec(kSchemaLock).status());
    RETURN_IF_ERROR(
        db.Exec("CREATE TABLE IF NOT EXISTS retrain_schema(version INTEGER NOT NULL)").status());
    ASSIGN_OR_RETURN(PostgresRows rows, db.Exec("SELECT version FROM retrain_schema"));
    int64_t version = 0;
    if (rows.size() == 0) {
      RETURN_IF_ERROR(db.Exec("INSERT INTO retrain_schema VALUES (0)").status());
    } else {
      version = rows.Int(0, 0);
    }
    if (version > kStoreSchemaVersion) return NewerSchemaError(db.Describe(), version);
    for (int64_t v = version; v < kStoreSchemaVersion; ++v) {
      for (const char* sql : Migrations()[v]) RETURN_IF_ERROR(db.Exec(sql).status());
    }
    return db.Exec("UPDATE retrain_schema SET version = $1", {P::Int(kStoreSchemaVersion)})
        .status();
  });
}

std::string PostgresStore::Describe() const { return db_->Describe(); }

absl::StatusOr<StoreContents> PostgresStore::LoadState(int64_t keep_finished) {
  StoreContents out;
  const int64_t keep = std::max<int64_t>(0, keep_finished);
  // One snapshot: a consistent state even while another coordinator writes.
  RETURN_IF_ERROR(db_->InTransaction([&]() -> absl::Status {
    out = StoreContents();
    RETURN_IF_ERROR(
        db_->Exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").status());
    ASSIGN_OR_RETURN(
        PostgresRows unfinished,
        db_->Exec(
            absl::StrCat("SELECT job FROM jobs WHERE state NOT IN ", kPostgresFinalStates).c_str(),
            FinalStates()));
    RETURN_IF_ERROR(ParseRows(unfinished, 0, "jobs", &out.jobs));
    auto params = FinalStates();
    params.push_back(P::Int(keep));
    ASSIGN_OR_RETURN(PostgresRows newest,
                     db_->Exec(absl::StrCat("SELECT job FROM jobs WHERE state IN ",
                                            kPostgresFinalStates, " ORDER BY seq DESC LIMIT $4")
                                   .c_str(),
                               params));
    RETURN_IF_ERROR(ParseRows(newest, 0, "jobs", &out.jobs));
    const int64_t oldest_loaded = SortLoadedJobs(out, unfinished.size(), keep);
    if (oldest_loaded >= 0) {
      params.back() = P::Int(oldest_loaded);
      ASSIGN_OR_RETURN(
          PostgresRows older,
          db_->Exec(absl::StrCat("SELECT type, state, COUNT(*), MAX(seq) FROM jobs "
                                 "WHERE state IN ",
                                 kPostgresFinalStates, " AND seq < $4 GROUP BY type, state")
                        .c_str(),
                    params));
      for (int i = 0; i < older.size(); ++i) {
        const auto type = static_cast<retrain::v1::JobType>(older.Int(i, 0));
        const auto state = static_cast<retrain::v1::JobState>(older.Int(i, 1));
        out.finished_not_loaded[{type, state}] = older.Int(i, 2);
        out.newest_not_loaded_seq = std::max(out.newest_not_loaded_seq, older.Int(i, 3));
      }
    }
    ASSIGN_OR_RETURN(PostgresRows counters, db_->Exec("SELECT name, value FROM counters"));
    for (int i = 0; i < counters.size(); ++i) {
      out.counters[counters.Bytes(i, 0)] = counters.Int(i, 1);
    }
    ASSIGN_OR_RETURN(PostgresRows plans, db_->Exec("SELECT job_id, plan FROM plans"));
    for (int i = 0; i < plans.size(); ++i) {
      auto& [id, plan] = out.plans.emplace_back();
      id = plans.Bytes(i, 0);
      RETURN_IF_ERROR(ParseStoredRow(plans.Bytes(i, 1), &plan, "plans"));
    }
    ASSIGN_OR_RETURN(PostgresRows tasks, db_->Exec("SELECT record FROM tasks ORDER BY id"));
    RETURN_IF_ERROR(ParseRows(tasks, 0, "tasks", &out.tasks));
    ASSIGN_OR_RETURN(PostgresRows workers, db_->Exec("SELECT worker FROM workers"));
    return ParseRows(workers, 0, "workers", &out.workers);
  }));
  return out;
}

absl::StatusOr<retrain::v1::Job> PostgresStore::LoadJob(const std::string& job_id) {
  std::vector<retrain::v1::Job> found;
  RETURN_IF_ERROR(db_->Retrying([&]() -> absl::Status {
    found.clear();
    ASSIGN_OR_RETURN(PostgresRows rows,
                     db_->Exec("SELECT job FROM jobs WHERE id = $1", {P::Text(job_id)}));
    return ParseRows(rows, 0, "jobs", &found);
  }));
  if (found.empty()) return absl::NotFoundError(absl::StrCat("job_id: no job '", job_id, "'"));
  return std::move(found[0]);
}

absl::StatusOr<std::string> PostgresStore::FindJobIdByRequestId(const std::string& request_id) {
  std::string id;
  RETURN_IF_ERROR(db_->Retrying([&]() -> absl::Status {
    ASSIGN_OR_RETURN(PostgresRows rows,
                     db_->Exec("SELECT id FROM jobs WHERE request_id = $1 AND request_id <> ''",
                               {P::Text(request_id)}));
    id = rows.size() > 0 ? rows.Bytes(0, 0) : "";
    return absl::OkStatus();
  }));
  return id;
}

absl::StatusOr<std::vector<retrain::v1::Job>> PostgresStore::LoadJobsBefore(int64_t before,
                                                                            int limit) {
  std::vector<retrain::v1::Job> out;
  RETURN_IF_ERROR(db_->Retrying([&]() -> absl::Status {
    out.clear();
    ASSIGN_OR_RETURN(PostgresRows rows,
                     db_->Exec("SELECT job FROM jobs WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
                               {P::Int(before), P::Int(limit)}));
    return ParseRows(rows, 0, "jobs", &out);
  }));
  return out;
}

absl::Status PostgresStore::CheckFence() {
  if (options_.leader_epoch <= 0) return absl::OkStatus();
  // FOR SHARE: a takeover (an UPDATE of this row) waits for this
  // transaction, and this one sees any takeover that committed before it.
  ASSIGN_OR_RETURN(PostgresRows rows,
                   db_->Exec("SELECT holder FROM leader WHERE id = 1 AND epoch = $1 AND "
                             "expires_at > clock_timestamp() FOR SHARE",
                             {P::Int(options_.leader_epoch)}));
  if (rows.size() == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(), ": fenced: leader epoch ", options_.leader_epoch,
                     " no longer holds the lease; this coordinator must not write"));
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::Commit(const StoreBatch& batch) {
  if (batch.empty()) return absl::OkStatus();
  return db_->InTransaction([&]() -> absl::Status {
    RETURN_IF_ERROR(CheckFence());
    for (const auto* job : batch.jobs) {
      RETURN_IF_ERROR(db_->Exec("INSERT INTO jobs(seq, id, type, state, request_id, job) "
                                "VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT (seq) DO UPDATE SET "
                                "id = EXCLUDED.id, type = EXCLUDED.type, state = EXCLUDED.state, "
                                "request_id = EXCLUDED.request_id, job = EXCLUDED.job",
                                {P::Int(JobSequence(job->id())), P::Text(job->id()),
                                 P::Int(job->type()), P::Int(job->state()),
                                 P::Text(job->request_id()), P::Bytes(job->SerializeAsString())})
                          .status());
    }
    for (const auto& [id, plan] : batch.plans) {
      RETURN_IF_ERROR(db_->Exec("INSERT INTO plans(job_id, plan) VALUES($1, $2) "
                                "ON CONFLICT (job_id) DO UPDATE SET plan = EXCLUDED.plan",
                                {P::Text(id), P::Bytes(plan->SerializeAsString())})
                          .status());
    }
    for (const auto* task : batch.tasks) {
      RETURN_IF_ERROR(db_->Exec("INSERT INTO tasks(id, job_id, record) VALUES($1, $2, $3) "
                                "ON CONFLICT (id) DO UPDATE SET job_id = EXCLUDED.job_id, "
                                "record = EXCLUDED.record",
                                {P::Int(task->id()), P::Text(task->job_id()),
                                 P::Bytes(task->SerializeAsString())})
                          .status());
    }
    for (const auto* worker : batch.workers) {
      RETURN_IF_ERROR(db_->Exec("INSERT INTO workers(id, worker) VALUES($1, $2) "
                                "ON CONFLICT (id) DO UPDATE SET worker = EXCLUDED.worker",
                                {P::Text(worker->id()), P::Bytes(worker->SerializeAsString())})
                          .status());
    }
    for (const auto& id : batch.drop_tasks_of_jobs) {
      RETURN_IF_ERROR(db_->Exec("DELETE FROM tasks WHERE job_id = $1", {P::Text(id)}).status());
      RETURN_IF_ERROR(db_->Exec("DELETE FROM plans WHERE job_id = $1", {P::Text(id)}).status());
    }
    for (int64_t id : batch.drop_tasks) {
      RETURN_IF_ERROR(db_->Exec("DELETE FROM tasks WHERE id = $1", {P::Int(id)}).status());
    }
    for (const auto& [name, value] : batch.counters) {
      RETURN_IF_ERROR(db_->Exec("INSERT INTO counters(name, value) VALUES($1, $2) "
                                "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                                {P::Text(name), P::Int(value)})
                          .status());
    }
    return absl::OkStatus();
  });
}

absl::Status PostgresStore::AppendRows(const char* table, const char* number_column,
                                       const char* value_column, const std::string& job_id,
                                       const std::vector<PostgresParam>& values) {
  if (values.empty()) return absl::OkStatus();
  // The rows' numbers are fixed before the transaction: when its commit
  // went through but the answer was lost, the retry finds them there and
  // inserts nothing twice. Only the leader (fenced) writes them, so no one
  // takes the numbers in between.
  int64_t first = 0;
  RETURN_IF_ERROR(db_->Retrying([&]() -> absl::Status {
    ASSIGN_OR_RETURN(PostgresRows next,
                     db_->Exec(absl::StrCat("SELECT COALESCE(MAX(", number_column,
                                            "), -1) + 1 "
                                            "FROM ",
                                            table, " WHERE job_id = $1")
                                   .c_str(),
                               {P::Text(job_id)}));
    first = next.Int(0, 0);
    return absl::OkStatus();
  }));
  const std::string insert =
      absl::StrCat("INSERT INTO ", table, "(job_id, ", number_column, ", ", value_column,
                   ") VALUES($1, $2, $3) ON CONFLICT (job_id, ", number_column, ") DO NOTHING");
  return db_->InTransaction([&]() -> absl::Status {
    RETURN_IF_ERROR(CheckFence());
    int64_t number = first;
    for (const auto& value : values) {
      RETURN_IF_ERROR(
          db_->Exec(insert.c_str(), {P::Text(job_id), P::Int(number++), value}).status());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<PostgresRows> PostgresStore::ReadRows(const char* table, const char* number_column,
                                                     const char* value_column,
                                                     const std::string& job_id, int64_t offset,
                                                     int limit) {
  MutexLock lock(&reader_mu_);
  if (reader_ == nullptr) {
    ASSIGN_OR_RETURN(reader_, PostgresConnection::Open(ConnectionOptions(options_)));
  }
  PostgresConnection& reader = *reader_;  // reader_mu_ is held until the end
  const std::string select =
      absl::StrCat("SELECT ", value_column, " FROM ", table, " WHERE job_id = $1 AND ",
                   number_column, " >= $2 ORDER BY ", number_column, " LIMIT $3");
  std::optional<PostgresRows> out;
  RETURN_IF_ERROR(reader.Retrying([&]() -> absl::Status {
    ASSIGN_OR_RETURN(out,
                     reader.Exec(select.c_str(), {P::Text(job_id), P::Int(offset), P::Int(limit)}));
    return absl::OkStatus();
  }));
  return *std::move(out);
}

absl::Status PostgresStore::AppendJobLog(const std::string& job_id,
                                         const std::vector<std::string>& lines) {
  std::vector<P> values;
  values.reserve(lines.size());
  for (const auto& line : lines) values.push_back(P::Text(line));
  return AppendRows("job_logs", "line_no", "line", job_id, values);
}

absl::StatusOr<std::vector<std::string>> PostgresStore::ReadJobLog(const std::string& job_id,
                                                                   int64_t offset, int max_lines) {
  ASSIGN_OR_RETURN(PostgresRows rows,
                   ReadRows("job_logs", "line_no", "line", job_id, offset, max_lines));
  std::vector<std::string> out;
  for (int i = 0; i < rows.size(); ++i) out.push_back(rows.Bytes(i, 0));
  return out;
}

absl::Status PostgresStore::AppendTrainingPoints(
    const std::string& job_id, const std::vector<retrain::v1::TrainingPoint>& points) {
  std::vector<P> values;
  values.reserve(points.size());
  for (const auto& point : points) values.push_back(P::Bytes(point.SerializeAsString()));
  return AppendRows("job_points", "point_no", "point", job_id, values);
}

absl::StatusOr<std::vector<retrain::v1::TrainingPoint>> PostgresStore::ReadTrainingPoints(
    const std::string& job_id, int64_t offset, int max_points) {
  ASSIGN_OR_RETURN(PostgresRows rows,
                   ReadRows("job_points", "point_no", "point", job_id, offset, max_points));
  std::vector<retrain::v1::TrainingPoint> out;
  RETURN_IF_ERROR(ParseRows(rows, 0, "job_points", &out));
  return out;
}

}  // namespace retrain::server
