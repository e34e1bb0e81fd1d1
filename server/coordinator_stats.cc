// Coordinator::Stats(): the figures behind /metrics.
#include "server/coordinator_stats.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>

#include "server/coordinator.h"

namespace retrain::server {

namespace v1 = retrain::v1;
using google::protobuf::util::TimeUtil;

std::string TaskKind(const v1::Task& task) {
  const auto* field = v1::Task::descriptor()->FindFieldByNumber(task.kind_case());
  return field != nullptr ? field->name() : "unknown";
}

CoordinatorStats Coordinator::Stats() const {
  MutexLock lock(&mu_);
  CoordinatorStats s;
  s.counters = counters_;
  const int64_t now = Now();
  for (const auto& [id, entry] : jobs_) {
    const v1::Job& job = entry.job;
    ++s.jobs[{job.type(), job.state()}];
    if (job.state() == v1::JOB_STATE_QUEUED) {
      ++s.queued_jobs;
      const double waited = (now - TimeUtil::TimestampToMilliseconds(job.create_time())) / 1000.0;
      s.oldest_queued_seconds = std::max(s.oldest_queued_seconds, waited);
    }
    if (job.state() == v1::JOB_STATE_RUNNING && job.type() == v1::JOB_TYPE_TRAINING &&
        job.progress().phase() == "training") {
      s.training.push_back({job.id(), job.progress().examples_per_sec(), job.progress().loss(),
                            job.progress().step()});
    }
  }
  for (const auto& [id, w] : workers_) {
    ++s.workers[w.state()];
    if (w.state() == v1::WORKER_STATE_LOST) continue;
    const auto& r = w.resources();
    s.cpu_cores += r.cpu_cores();
    if (w.state() == v1::WORKER_STATE_IDLE) s.idle_cpu_cores += r.cpu_cores();
    s.memory_bytes += r.memory_bytes();
    s.free_memory_bytes += r.free_memory_bytes();
    s.gpus += r.gpus_size();
    for (const auto& g : r.gpus()) {
      s.gpu_memory_bytes += g.memory_bytes();
      s.free_gpu_memory_bytes += g.free_memory_bytes();
    }
  }
  for (const auto& [key, n] : forgotten_jobs_) s.jobs[key] += n;
  s.jobs_in_memory = static_cast<int64_t>(jobs_.size());
  s.tasks_leased_now = static_cast<int64_t>(lease_to_task_.size());
  s.tasks_pending_now = static_cast<int64_t>(pending_.size());
  return s;
}

}  // namespace retrain::server
