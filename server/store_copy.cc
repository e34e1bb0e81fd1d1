#include "server/store_copy.h"

#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace retrain::server {

namespace {

constexpr int kLogLinesPerRead = 10000;

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
    for (int64_t offset = 0;;) {
      ASSIGN_OR_RETURN(std::vector<std::string> lines,
                       from.ReadJobLog(job.id(), offset, kLogLinesPerRead));
      if (lines.empty()) break;
      RETURN_IF_ERROR(to.AppendJobLog(job.id(), lines));
      offset += static_cast<int64_t>(lines.size());
      counts.log_lines += static_cast<int64_t>(lines.size());
    }
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
