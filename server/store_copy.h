// Copies one store's whole state into another, empty one: how a
// coordinator moves from the embedded SQLite database to PostgreSQL
// (retrain-server --migrate_from_sqlite).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "server/store.h"

namespace retrain::server {

struct StoreCopyCounts {
  int64_t jobs = 0;
  int64_t tasks = 0;
  int64_t workers = 0;
  int64_t log_lines = 0;
  int64_t training_points = 0;
};

// Copies every job (finished ones too), plan, task, worker, counter, job
// log line and training point from `from` into `to`: the logs and series
// first, then the state in one transaction, so that after a failure `to`
// holds no jobs (but may hold log lines and points: start again on a fresh
// database). FAILED_PRECONDITION when `to`
// already holds jobs or counters.
absl::StatusOr<StoreCopyCounts> CopyStore(Store& from, Store& to);

}  // namespace retrain::server
