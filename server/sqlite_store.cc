#include "server/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace retrain::server {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  type INTEGER NOT NULL DEFAULT 0,
  state INTEGER NOT NULL DEFAULT 0,
  request_id TEXT NOT NULL DEFAULT '',
  job BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS plans(
  job_id TEXT PRIMARY KEY,
  plan BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tasks(
  id INTEGER PRIMARY KEY,
  job_id TEXT NOT NULL,
  record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_job ON tasks(job_id);
CREATE TABLE IF NOT EXISTS counters(
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS workers(
  id TEXT PRIMARY KEY,
  worker BLOB NOT NULL);
)sql";

// After AddJobColumnsIfMissing: the indexes need its columns.
constexpr const char* kJobIndexes = R"sql(
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, type);
CREATE INDEX IF NOT EXISTS jobs_by_request_id ON jobs(request_id) WHERE request_id != '';
)sql";

// The final states (IsFinalState), as the parameters ?1..?3 of a query.
constexpr const char* kSqliteFinalStates = "(?1, ?2, ?3)";

// A prepared statement, finalised on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  absl::Status Error(const char* what) const {
    return absl::InternalError(absl::StrCat("state database: ", what, ": ", sqlite3_errmsg(db_)));
  }
  void BindText(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int i, const std::string& s) {
    sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  absl::Status Run(const char* what) {
    int rc = sqlite3_step(stmt_);
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    if (rc != SQLITE_DONE) return Error(what);
    return absl::OkStatus();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

std::string ColumnBlob(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  return std::string(static_cast<const char*>(p), sqlite3_column_bytes(s, i));
}
std::string ColumnText(sqlite3_stmt* s, int i) {
  const unsigned char* p = sqlite3_column_text(s, i);
  return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s, i)) : "";
}

using RowReader = std::function<absl::Status(sqlite3_stmt*)>;

// Steps a prepared, bound statement and calls `row` for each result row.
absl::Status ReadRows(Statement& st, const RowReader& row) {
  if (!st.ok()) return st.Error("prepare");
  while (true) {
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) return absl::OkStatus();
    if (rc != SQLITE_ROW) return st.Error("read");
    RETURN_IF_ERROR(row(st.get()));
  }
}

// Runs `sql`, which has no parameters, and calls `row` for each result row.
absl::Status Query(sqlite3* db, const char* sql, const RowReader& row) {
  Statement st(db, sql);
  return ReadRows(st, row);
}

// Binds the final states to ?1..?3 (kSqliteFinalStates).
void BindFinalStates(Statement& st) {
  st.BindInt(1, retrain::v1::JOB_STATE_SUCCEEDED);
  st.BindInt(2, retrain::v1::JOB_STATE_FAILED);
  st.BindInt(3, retrain::v1::JOB_STATE_CANCELLED);
}

// Appends `lines` to the file at `path`, creating it and its folder.
absl::Status AppendLines(const std::string& path, const std::vector<std::string>& lines) {
  if (lines.empty()) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::ofstream out(path, std::ios::app);
  for (const auto& line : lines) out << line << '\n';
  out.flush();
  if (!out) return absl::InternalError(absl::StrCat(path, ": cannot append"));
  return absl::OkStatus();
}

// Up to `max_lines` whole lines of the file at `path` from line `offset`;
// none when there is no such file. A line without its newline is still
// being appended: it is read whole next time.
absl::StatusOr<std::vector<std::string>> ReadLines(const std::string& path, int64_t offset,
                                                   int max_lines) {
  std::ifstream in(path);
  std::vector<std::string> out;
  std::string line;
  for (int64_t n = 0; static_cast<int>(out.size()) < max_lines && std::getline(in, line); ++n) {
    if (in.eof()) break;
    if (n >= offset) out.push_back(std::move(line));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("--state_dir ", state_dir, ": cannot create: ", ec.message()));
  }
  const std::string path = state_dir + "/retrain.db";
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat(path, ": cannot open: ", msg));
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, state_dir));
  sqlite3_busy_timeout(db, 5000);
  RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(store->Upgrade());
  return store;
}

absl::Status SqliteStore::Upgrade() {
  int64_t version = 0;
  RETURN_IF_ERROR(Query(db_, "PRAGMA user_version", [&](sqlite3_stmt* s) {
    version = sqlite3_column_int64(s, 0);
    return absl::OkStatus();
  }));
  if (version > kStoreSchemaVersion) return NewerSchemaError(Describe(), version);
  if (version < 1) {
    // Version 0: a new database, or one from before versions were kept.
    RETURN_IF_ERROR(Exec(kSchema));
    RETURN_IF_ERROR(AddJobColumnsIfMissing());
    RETURN_IF_ERROR(Exec(kJobIndexes));
  }
  // Version 1 -> 2 changes no table: training points are files beside the
  // logs.
  return Exec(absl::StrCat("PRAGMA user_version = ", kStoreSchemaVersion).c_str());
}

std::string SqliteStore::Describe() const { return "SQLite " + state_dir_ + "/retrain.db"; }

SqliteStore::~SqliteStore() { sqlite3_close(db_); }

absl::Status SqliteStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("state database: ", msg));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::InTransaction(const std::function<absl::Status()>& body) {
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  absl::Status s = body();
  if (!s.ok()) {
    Exec("ROLLBACK").IgnoreError();
    return s;
  }
  return Exec("COMMIT");
}

absl::Status SqliteStore::AddJobColumnsIfMissing() {
  bool has_state = false;
  RETURN_IF_ERROR(Query(db_, "PRAGMA table_info(jobs)", [&](sqlite3_stmt* s) {
    has_state = has_state || ColumnText(s, 1) == "state";
    return absl::OkStatus();
  }));
  if (has_state) return absl::OkStatus();
  return InTransaction([&]() -> absl::Status {
    RETURN_IF_ERROR(Exec("ALTER TABLE jobs ADD COLUMN type INTEGER NOT NULL DEFAULT 0"));
    RETURN_IF_ERROR(Exec("ALTER TABLE jobs ADD COLUMN state INTEGER NOT NULL DEFAULT 0"));
    RETURN_IF_ERROR(Exec("ALTER TABLE jobs ADD COLUMN request_id TEXT NOT NULL DEFAULT ''"));
    // Only the new columns' values are kept, not the parsed jobs.
    struct Columns {
      int64_t seq;
      int type;
      int state;
      std::string request_id;
    };
    std::vector<Columns> rows;
    RETURN_IF_ERROR(Query(db_, "SELECT seq, job FROM jobs", [&](sqlite3_stmt* s) {
      retrain::v1::Job job;
      RETURN_IF_ERROR(ParseStoredRow(ColumnBlob(s, 1), &job, "jobs"));
      rows.push_back({sqlite3_column_int64(s, 0), job.type(), job.state(), job.request_id()});
      return absl::OkStatus();
    }));
    Statement fill(db_, "UPDATE jobs SET type = ?, state = ?, request_id = ? WHERE seq = ?");
    if (!fill.ok()) return fill.Error("prepare");
    for (const auto& row : rows) {
      fill.BindInt(1, row.type);
      fill.BindInt(2, row.state);
      fill.BindText(3, row.request_id);
      fill.BindInt(4, row.seq);
      RETURN_IF_ERROR(fill.Run("add job columns"));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<StoreContents> SqliteStore::LoadState(int64_t keep_finished) {
  StoreContents out;
  auto parse_job = [&](sqlite3_stmt* s) {
    return ParseStoredRow(ColumnBlob(s, 0), &out.jobs.emplace_back(), "jobs");
  };
  // Through the state index: the table's rows are read only for these jobs.
  Statement unfinished(db_, absl::StrCat("SELECT job FROM jobs WHERE seq IN (SELECT seq FROM jobs "
                                         "WHERE state NOT IN ",
                                         kSqliteFinalStates, ")")
                                .c_str());
  BindFinalStates(unfinished);
  RETURN_IF_ERROR(ReadRows(unfinished, parse_job));
  const size_t unfinished_count = out.jobs.size();
  // Newest first along the key ("+state" keeps the state index out): the
  // scan stops at the last one wanted, having passed only unfinished jobs.
  Statement newest_finished(db_, absl::StrCat("SELECT job FROM jobs WHERE +state IN ",
                                              kSqliteFinalStates, " ORDER BY seq DESC LIMIT ?4")
                                     .c_str());
  const int64_t keep = std::max<int64_t>(0, keep_finished);
  BindFinalStates(newest_finished);
  newest_finished.BindInt(4, keep);
  RETURN_IF_ERROR(ReadRows(newest_finished, parse_job));
  const int64_t oldest_loaded = SortLoadedJobs(out, unfinished_count, keep);
  if (oldest_loaded >= 0) {
    Statement older(db_, absl::StrCat("SELECT type, state, COUNT(*), MAX(seq) FROM jobs "
                                      "WHERE state IN ",
                                      kSqliteFinalStates, " AND seq < ?4 GROUP BY type, state")
                             .c_str());
    BindFinalStates(older);
    older.BindInt(4, oldest_loaded);
    RETURN_IF_ERROR(ReadRows(older, [&](sqlite3_stmt* s) {
      const auto type = static_cast<retrain::v1::JobType>(sqlite3_column_int(s, 0));
      const auto state = static_cast<retrain::v1::JobState>(sqlite3_column_int(s, 1));
      out.finished_not_loaded[{type, state}] = sqlite3_column_int64(s, 2);
      out.newest_not_loaded_seq =
          std::max<int64_t>(out.newest_not_loaded_seq, sqlite3_column_int64(s, 3));
      return absl::OkStatus();
    }));
  }
  RETURN_IF_ERROR(Query(db_, "SELECT name, value FROM counters", [&](sqlite3_stmt* s) {
    out.counters[ColumnText(s, 0)] = sqlite3_column_int64(s, 1);
    return absl::OkStatus();
  }));
  RETURN_IF_ERROR(Query(db_, "SELECT job_id, plan FROM plans", [&](sqlite3_stmt* s) {
    auto& [id, plan] = out.plans.emplace_back();
    id = ColumnText(s, 0);
    return ParseStoredRow(ColumnBlob(s, 1), &plan, "plans");
  }));
  RETURN_IF_ERROR(Query(db_, "SELECT record FROM tasks ORDER BY id", [&](sqlite3_stmt* s) {
    return ParseStoredRow(ColumnBlob(s, 0), &out.tasks.emplace_back(), "tasks");
  }));
  RETURN_IF_ERROR(Query(db_, "SELECT worker FROM workers", [&](sqlite3_stmt* s) {
    return ParseStoredRow(ColumnBlob(s, 0), &out.workers.emplace_back(), "workers");
  }));
  return out;
}

absl::StatusOr<retrain::v1::Job> SqliteStore::LoadJob(const std::string& job_id) {
  Statement st(db_, "SELECT job FROM jobs WHERE id = ?");
  if (!st.ok()) return st.Error("prepare");
  st.BindText(1, job_id);
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_DONE) return absl::NotFoundError(absl::StrCat("job_id: no job '", job_id, "'"));
  if (rc != SQLITE_ROW) return st.Error("read job");
  retrain::v1::Job job;
  RETURN_IF_ERROR(ParseStoredRow(ColumnBlob(st.get(), 0), &job, "jobs"));
  return job;
}

absl::StatusOr<std::string> SqliteStore::FindJobIdByRequestId(const std::string& request_id) {
  Statement st(db_, "SELECT id FROM jobs WHERE request_id = ? AND request_id != ''");
  if (!st.ok()) return st.Error("prepare");
  st.BindText(1, request_id);
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_DONE) return std::string();
  if (rc != SQLITE_ROW) return st.Error("read job by request_id");
  return ColumnText(st.get(), 0);
}

absl::StatusOr<std::vector<retrain::v1::Job>> SqliteStore::LoadJobsBefore(int64_t before,
                                                                          int limit) {
  Statement st(db_, "SELECT job FROM jobs WHERE seq < ? ORDER BY seq DESC LIMIT ?");
  if (!st.ok()) return st.Error("prepare");
  st.BindInt(1, before);
  st.BindInt(2, limit);
  std::vector<retrain::v1::Job> out;
  for (;;) {
    const int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return st.Error("read jobs");
    RETURN_IF_ERROR(ParseStoredRow(ColumnBlob(st.get(), 0), &out.emplace_back(), "jobs"));
  }
}

absl::Status SqliteStore::Commit(const StoreBatch& batch) {
  if (batch.empty()) return absl::OkStatus();
  return InTransaction([&]() -> absl::Status {
    Statement put_job(db_,
                      "INSERT OR REPLACE INTO jobs(seq, id, type, state, request_id, job) "
                      "VALUES(?, ?, ?, ?, ?, ?)");
    Statement put_plan(db_, "INSERT OR REPLACE INTO plans(job_id, plan) VALUES(?, ?)");
    Statement put_task(db_, "INSERT OR REPLACE INTO tasks(id, job_id, record) VALUES(?, ?, ?)");
    Statement put_worker(db_, "INSERT OR REPLACE INTO workers(id, worker) VALUES(?, ?)");
    Statement drop_tasks(db_, "DELETE FROM tasks WHERE job_id = ?");
    Statement drop_plan(db_, "DELETE FROM plans WHERE job_id = ?");
    Statement drop_task(db_, "DELETE FROM tasks WHERE id = ?");
    Statement put_counter(db_, "INSERT OR REPLACE INTO counters(name, value) VALUES(?, ?)");
    for (Statement* st : {&put_job, &put_plan, &put_task, &put_worker, &drop_tasks, &drop_plan,
                          &drop_task, &put_counter}) {
      if (!st->ok()) return st->Error("prepare");
    }
    for (const auto* job : batch.jobs) {
      put_job.BindInt(1, JobSequence(job->id()));
      put_job.BindText(2, job->id());
      put_job.BindInt(3, job->type());
      put_job.BindInt(4, job->state());
      put_job.BindText(5, job->request_id());
      put_job.BindBlob(6, job->SerializeAsString());
      RETURN_IF_ERROR(put_job.Run("write job"));
    }
    for (const auto& [id, plan] : batch.plans) {
      put_plan.BindText(1, id);
      put_plan.BindBlob(2, plan->SerializeAsString());
      RETURN_IF_ERROR(put_plan.Run("write plan"));
    }
    for (const auto* task : batch.tasks) {
      put_task.BindInt(1, task->id());
      put_task.BindText(2, task->job_id());
      put_task.BindBlob(3, task->SerializeAsString());
      RETURN_IF_ERROR(put_task.Run("write task"));
    }
    for (const auto* worker : batch.workers) {
      put_worker.BindText(1, worker->id());
      put_worker.BindBlob(2, worker->SerializeAsString());
      RETURN_IF_ERROR(put_worker.Run("write worker"));
    }
    for (const auto& id : batch.drop_tasks_of_jobs) {
      drop_tasks.BindText(1, id);
      RETURN_IF_ERROR(drop_tasks.Run("drop tasks"));
      drop_plan.BindText(1, id);
      RETURN_IF_ERROR(drop_plan.Run("drop plan"));
    }
    for (int64_t id : batch.drop_tasks) {
      drop_task.BindInt(1, id);
      RETURN_IF_ERROR(drop_task.Run("drop task"));
    }
    for (const auto& [name, value] : batch.counters) {
      put_counter.BindText(1, name);
      put_counter.BindInt(2, value);
      RETURN_IF_ERROR(put_counter.Run("write counter"));
    }
    return absl::OkStatus();
  });
}

std::string SqliteStore::JobLogPath(const std::string& job_id) const {
  return state_dir_ + "/logs/" + job_id + ".log";
}

std::string SqliteStore::TrainingPointsPath(const std::string& job_id) const {
  return state_dir_ + "/logs/" + job_id + ".points";
}

absl::Status SqliteStore::AppendJobLog(const std::string& job_id,
                                       const std::vector<std::string>& lines) {
  return AppendLines(JobLogPath(job_id), lines);
}

absl::StatusOr<std::vector<std::string>> SqliteStore::ReadJobLog(const std::string& job_id,
                                                                 int64_t offset, int max_lines) {
  return ReadLines(JobLogPath(job_id), offset, max_lines);
}

absl::Status SqliteStore::AppendTrainingPoints(
    const std::string& job_id, const std::vector<retrain::v1::TrainingPoint>& points) {
  std::vector<std::string> lines;
  lines.reserve(points.size());
  for (const auto& point : points) lines.push_back(absl::Base64Escape(point.SerializeAsString()));
  return AppendLines(TrainingPointsPath(job_id), lines);
}

absl::StatusOr<std::vector<retrain::v1::TrainingPoint>> SqliteStore::ReadTrainingPoints(
    const std::string& job_id, int64_t offset, int max_points) {
  const std::string path = TrainingPointsPath(job_id);
  ASSIGN_OR_RETURN(std::vector<std::string> lines, ReadLines(path, offset, max_points));
  std::vector<retrain::v1::TrainingPoint> points(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string bytes;
    if (!absl::Base64Unescape(lines[i], &bytes) || !points[i].ParseFromString(bytes)) {
      return absl::DataLossError(absl::StrCat(path, ": point ", offset + static_cast<int64_t>(i),
                                              " cannot be parsed; the file is damaged"));
    }
  }
  return points;
}

}  // namespace retrain::server
