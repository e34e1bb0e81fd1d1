// What trainers log, kept per job: the log lines and the training series
// that workers' reports carry, appended to the store, and read back off the
// engine's lock.
#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/job_states.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/coordinator.h"

namespace retrain::server {

namespace v1 = retrain::v1;

namespace {

// The page size a reader asked for (0: `fallback`), at most `most`.
int PageSize(int asked, int fallback, int most) {
  return asked > 0 ? std::min(asked, most) : fallback;
}

// `rows` was read one longer than `page`: drops the extra one and says
// whether there was one (more rows follow).
template <typename Row>
bool TrimToPage(std::vector<Row>& rows, int page) {
  if (static_cast<int>(rows.size()) <= page) return false;
  rows.resize(page);
  return true;
}

// The items of `items`, which follow the `before` items of the lease's
// earlier reports (unset: all taken so far), that `*taken` does not count
// yet; counts them in.
template <typename Item>
std::vector<Item> NotTakenYet(const google::protobuf::RepeatedPtrField<Item>& items,
                              std::optional<int64_t> before, int64_t* taken) {
  const int64_t size = items.size();
  const int64_t start = before.value_or(*taken);
  const int64_t skip = std::clamp<int64_t>(*taken - start, 0, size);
  *taken = std::max(*taken, start + size);
  return {items.begin() + skip, items.end()};
}

std::optional<int64_t> IfSet(bool set, int64_t value) {
  return set ? std::optional<int64_t>(value) : std::nullopt;
}

}  // namespace

void Coordinator::AppendTrainerOutput(const std::string& job_id,
                                      const v1::ReportProgressRequest& report,
                                      TrainerOutputTaken* taken) {
  // The log and the series are for people; the job goes on without them.
  const std::vector<std::string> lines =
      NotTakenYet(report.log_lines(),
                  IfSet(report.has_log_lines_before(), report.log_lines_before()), &taken->lines);
  if (!lines.empty()) {
    absl::Status s = store_->AppendJobLog(job_id, lines);
    if (!s.ok()) Logger("server")->warn("job {}: log lines lost: {}", job_id, s.ToString());
  }
  const std::vector<v1::TrainingPoint> points = NotTakenYet(
      report.points(), IfSet(report.has_points_before(), report.points_before()), &taken->points);
  if (!points.empty()) {
    absl::Status s = store_->AppendTrainingPoints(job_id, points);
    if (!s.ok()) Logger("server")->warn("job {}: training points lost: {}", job_id, s.ToString());
  }
}

absl::StatusOr<bool> Coordinator::OutputComplete(const std::string& job_id, int64_t offset) const {
  if (offset < 0) return absl::InvalidArgumentError("offset: must not be negative");
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(const v1::Job job, LookupJob(job_id));
  if (!IsFinalState(job.state())) return false;
  for (const auto& [lease, ended] : ended_leases_) {
    if (ended.job_id == job_id) return false;
  }
  return true;
}

absl::StatusOr<v1::GetJobLogsResponse> Coordinator::GetJobLogs(
    const v1::GetJobLogsRequest& req) const {
  ASSIGN_OR_RETURN(const bool complete, OutputComplete(req.job_id(), req.offset()));
  const int max_lines = PageSize(req.max_lines(), 1000, 10000);
  // Read off the lock: a slow store (PostgreSQL over a network) does not
  // hold up the engine. Whether the output is complete was read first, so
  // if it was, all its lines are in the log by now. One line more than asked for says
  // whether there are more.
  ASSIGN_OR_RETURN(std::vector<std::string> lines,
                   log_reader_->ReadJobLog(req.job_id(), req.offset(), max_lines + 1));
  const bool more = TrimToPage(lines, max_lines);
  v1::GetJobLogsResponse resp;
  for (auto& line : lines) resp.add_lines(std::move(line));
  resp.set_next_offset(req.offset() + resp.lines_size());
  resp.set_job_ended(complete && !more);
  return resp;
}

absl::StatusOr<v1::GetJobMetricsResponse> Coordinator::GetJobMetrics(
    const v1::GetJobMetricsRequest& req) const {
  ASSIGN_OR_RETURN(const bool complete, OutputComplete(req.job_id(), req.offset()));
  const int max_points = PageSize(req.max_points(), 10000, 100000);
  // Off the lock, as GetJobLogs.
  ASSIGN_OR_RETURN(std::vector<v1::TrainingPoint> points,
                   log_reader_->ReadTrainingPoints(req.job_id(), req.offset(), max_points + 1));
  const bool more = TrimToPage(points, max_points);
  v1::GetJobMetricsResponse resp;
  for (auto& point : points) *resp.add_points() = std::move(point);
  resp.set_next_offset(req.offset() + resp.points_size());
  resp.set_job_ended(complete && !more);
  return resp;
}

}  // namespace retrain::server
