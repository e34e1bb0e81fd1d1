// Running the two kinds of dataset-build task on this machine. No RPC here:
// the agent leases tasks and reports what these return.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "dataset/layout.h"
#include "retrain/v1/worker.pb.h"

namespace retrain::worker {

struct RunContext {
  // Threads that read and decode images.
  int threads = 1;
  // Called from the running thread now and then with files done and bytes
  // written so far.
  std::function<void(int64_t done, int64_t bytes)> progress;
  // Set from another thread to stop early (lease revoked).
  const std::atomic<bool>* cancelled = nullptr;
  // Called just before output files are renamed into place: true when the
  // coordinator has just confirmed (and so extended) the task's lease.
  // False drops the output: another worker may own the task by now. Unset:
  // always true.
  std::function<bool(int64_t done, int64_t bytes)> confirm_lease;
};

// A task's shard format and verify mode as this worker knows them, ""
// being the default; a name it does not know (from a newer coordinator) is
// INVALID_ARGUMENT: "shard format 'x' is unknown to this worker (it knows
// tfrecord, webdataset)".
absl::StatusOr<dataset::ShardFormat> TaskShardFormat(const std::string& name);
absl::StatusOr<dataset::VerifyMode> TaskVerifyMode(const std::string& name);

// Writes one shard: `<output>/<file_name>` and `<output>/index/<file_name>.idx`,
// each to a hidden temporary name first, fsynced and renamed into place, so a
// shard is either complete or absent. Each file is validated as the task's
// verify mode says while the records are made; those that fail are skipped
// and listed (the result's `skipped`), not errors. Errors: the output cannot be written
// (PERMISSION_DENIED, RESOURCE_EXHAUSTED for a full disk, ...), or CANCELLED.
absl::StatusOr<retrain::v1::ShardResult> RunShardTask(const retrain::v1::ShardTask& task,
                                                      const RunContext& context);

}  // namespace retrain::worker
