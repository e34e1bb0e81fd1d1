#include "server/store_copy.h"

#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace retrain::server {

namespace {

constexpr int kRowsPerRead = 10000;

// Copies one job's rows of one kind (log lines, training points) in chunks,
// read with `read(offset, limit)` and written with `append`; returns how many.
template <typename Read, typename Append>
absl::StatusOr<int64_t> CopyRows(const Read& read, const Append& append) {
  int64_t offset = 0;
  for (;;) {
    ASSIGN_OR_RETURN(auto rows, read(offset, kRowsPerRead));
    if (rows.empty()) return offset;
    RETURN_IF_ERROR(append(rows));
    offset += static_cast<int64_t>(rows.size());
  }
}

}  // namespace

absl::StatusOr<StoreCopyCounts> CopyStore(Store& from, Store& to) {
  ASSIGN_OR_RETURN(StoreContents existing, to.LoadState(0));
  if (!existing.jobs.empty() || !existing.finished_not_loaded.empty() ||
      !existing.counters.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(to.Describe(),
                     " already holds a coordinator's state; copy into an empty "
                     "database"));
  }
  ASSIGN_OR_RETURN(StoreContents all, from.LoadState(std::numeric_limits<int64_t>::max()));
  StoreCopyCounts counts;
  for (const auto& job : all.jobs) {
    const std::string& id = job.id();
    ASSIGN_OR_RETURN(
        const int64_t lines,
        CopyRows([&](int64_t offset, int limit) { return from.ReadJobLog(id, offset, limit); },
                 [&](const auto& rows) { return to.AppendJobLog(id, rows); }));
    ASSIGN_OR_RETURN(const int64_t points,
                     CopyRows([&](int64_t offset,
                                  int limit) { return from.ReadTrainingPoints(id, offset, limit); },
                              [&](const auto& rows) { return to.AppendTrainingPoints(id, rows); }));
    counts.log_lines += lines;
    counts.training_points += points;
  }
  StoreBatch batch;
  for (const auto& job : all.jobs) batch.jobs.push_back(&job);
  for (const auto& [id, plan] : all.plans) batch.plans.emplace_back(id, &plan);
  for (const auto& task : all.tasks) batch.tasks.push_back(&task);
  for (const auto& worker : all.workers) batch.workers.push_back(&worker);
  batch.counters.assign(all.counters.begin(), all.counters.end());
  RETURN_IF_ERROR(to.Commit(batch));
  counts.jobs = static_cast<int64_t>(all.jobs.size());
  counts.tasks = static_cast<int64_t>(all.tasks.size());
  counts.workers = static_cast<int64_t>(all.workers.size());
  return counts;
}

}  // namespace retrain::server
