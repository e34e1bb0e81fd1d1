#include "server/store.h"

#include <algorithm>
#include <cstdint>

namespace retrain::server {

int64_t JobSequence(const std::string& job_id) {
  if (job_id.size() < 3 || job_id.compare(0, 2, "j-") != 0) return -1;
  int64_t seq = 0;
  for (size_t i = 2; i < job_id.size(); ++i) {
    const char c = job_id[i];
    if (c < '0' || c > '9' || seq > (INT64_MAX - 9) / 10) return -1;
    seq = seq * 10 + (c - '0');
  }
  return seq;
}

absl::Status NewerSchemaError(const std::string& database, int64_t version) {
  return absl::FailedPreconditionError(absl::StrCat(
      database, " has schema version ", version, ", newer than this retrain-server's ",
      kStoreSchemaVersion, ": run the retrain-server release that wrote it, or a newer one"));
}

int64_t SortLoadedJobs(StoreContents& contents, size_t unfinished, int64_t keep) {
  auto& jobs = contents.jobs;
  const int64_t finished = static_cast<int64_t>(jobs.size() - unfinished);
  // Read newest first, so the last one read is the oldest loaded.
  const int64_t oldest = finished > 0 ? JobSequence(jobs.back().id()) : INT64_MAX;
  std::sort(jobs.begin(), jobs.end(),
            [](const auto& a, const auto& b) { return JobSequence(a.id()) < JobSequence(b.id()); });
  // Fewer finished jobs than asked for: every one is loaded.
  return finished == keep ? oldest : -1;
}

}  // namespace retrain::server
