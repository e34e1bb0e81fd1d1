// Figures of the coordinator for metrics and status views, without any
// metrics library: server/metrics.cc turns them into Prometheus families.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "retrain/v1/job.pb.h"
#include "retrain/v1/worker.pb.h"

namespace retrain::server {

// Totals since the coordinator process started, by task kind (TaskKind()).
struct CoordinatorCounters {
  std::map<std::string, int64_t> tasks_leased;
  // Re-queued after a lost lease or a retryable failure.
  std::map<std::string, int64_t> tasks_retried;
  // Failed for good (attempts used up, or an error retrying cannot fix).
  std::map<std::string, int64_t> tasks_failed;
  // Images written into shards, of which converted (re-encoded), and
  // files skipped as unusable (by validation or when writing).
  int64_t images_written = 0;
  int64_t images_converted = 0;
  int64_t images_skipped = 0;
  // Seconds jobs waited in QUEUED before they started, and how many did.
  double queue_wait_seconds_sum = 0;
  int64_t queue_wait_count = 0;
};

// A consistent snapshot (taken under the coordinator's lock).
struct CoordinatorStats {
  CoordinatorCounters counters;
  // Jobs by (type, state), every pair with at least one job.
  std::map<std::pair<retrain::v1::JobType, retrain::v1::JobState>, int64_t> jobs;
  int64_t queued_jobs = 0;
  // Jobs held in memory: every unfinished one and the newest finished.
  int64_t jobs_in_memory = 0;
  double oldest_queued_seconds = 0;
  std::map<retrain::v1::WorkerState, int64_t> workers;
  // Over workers that are not lost.
  int64_t cpu_cores = 0;
  int64_t idle_cpu_cores = 0;  // of idle workers
  int64_t memory_bytes = 0;
  int64_t free_memory_bytes = 0;
  int64_t gpus = 0;
  int64_t gpu_memory_bytes = 0;
  int64_t free_gpu_memory_bytes = 0;
  int64_t tasks_leased_now = 0;
  int64_t tasks_pending_now = 0;
  struct Training {
    std::string job_id;
    double examples_per_sec = 0;
    double loss = 0;
    int64_t step = 0;
  };
  // Running training jobs.
  std::vector<Training> training;
};

// The name of the task's field in Task's `kind` oneof: "list", "shard",
// "train", "eval", "verify_shard".
std::string TaskKind(const retrain::v1::Task& task);

}  // namespace retrain::server
