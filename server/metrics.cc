#include "server/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <sstream>

#include "common/job_states.h"

namespace retrain::server {

namespace v1 = retrain::v1;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

namespace {

// Seconds: from a fast lookup to a long WatchJob poll.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return buckets;
}

MetricFamily Family(const std::string& name, const std::string& help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void AddGauge(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

void AddCounter(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  f.metric.push_back(std::move(m));
}

// One family of task counters by kind; every kind appears (at 0 before its
// first event), so that rate() sees the series from the start.
MetricFamily TaskCounter(const std::string& name, const std::string& help,
                         const std::map<std::string, int64_t>& by_kind) {
  MetricFamily f = Family(name, help, MetricType::Counter);
  const auto* kinds = v1::Task::descriptor()->FindOneofByName("kind");
  for (int i = 0; i < kinds->field_count(); ++i) {
    const std::string& kind = kinds->field(i)->name();
    const auto it = by_kind.find(kind);
    AddCounter(f, {{"kind", kind}}, it == by_kind.end() ? 0 : static_cast<double>(it->second));
  }
  return f;
}

std::vector<MetricFamily> CoordinatorFamilies(const CoordinatorStats& s) {
  std::vector<MetricFamily> out;
  MetricFamily jobs = Family("retrain_jobs", "Jobs known to the coordinator, by type and state.",
                             MetricType::Gauge);
  for (int t = v1::JOB_TYPE_DATASET_BUILD; t <= v1::JobType_MAX; ++t) {
    if (!v1::JobType_IsValid(t)) continue;
    for (int st = v1::JOB_STATE_QUEUED; st <= v1::JobState_MAX; ++st) {
      if (!v1::JobState_IsValid(st)) continue;
      const auto key = std::make_pair(static_cast<v1::JobType>(t), static_cast<v1::JobState>(st));
      const auto it = s.jobs.find(key);
      AddGauge(jobs,
               {{"type", EnumLabel(v1::JobType_Name(key.first), "JOB_TYPE_")},
                {"state", EnumLabel(v1::JobState_Name(key.second), "JOB_STATE_")}},
               it == s.jobs.end() ? 0 : static_cast<double>(it->second));
    }
  }
  out.push_back(std::move(jobs));

  MetricFamily in_memory =
      Family("retrain_jobs_in_memory",
             "Jobs held in memory: every unfinished one and the newest finished "
             "(--max_finished_jobs_in_memory).",
             MetricType::Gauge);
  AddGauge(in_memory, {}, static_cast<double>(s.jobs_in_memory));
  out.push_back(std::move(in_memory));

  MetricFamily queue = Family("retrain_queue_length", "Jobs waiting in QUEUED.", MetricType::Gauge);
  AddGauge(queue, {}, static_cast<double>(s.queued_jobs));
  out.push_back(std::move(queue));
  MetricFamily oldest = Family("retrain_queue_oldest_wait_seconds",
                               "How long the oldest QUEUED job has waited.", MetricType::Gauge);
  AddGauge(oldest, {}, s.oldest_queued_seconds);
  out.push_back(std::move(oldest));
  MetricFamily wait = Family("retrain_queue_wait_seconds",
                             "Time jobs waited in QUEUED before they started.",
                             MetricType::Summary);
  ClientMetric w;
  w.summary.sample_count = static_cast<uint64_t>(s.counters.queue_wait_count);
  w.summary.sample_sum = s.counters.queue_wait_seconds_sum;
  wait.metric.push_back(std::move(w));
  out.push_back(std::move(wait));

  MetricFamily workers =
      Family("retrain_workers", "Registered workers, by state.", MetricType::Gauge);
  for (int st = v1::WORKER_STATE_IDLE; st <= v1::WorkerState_MAX; ++st) {
    const auto it = s.workers.find(static_cast<v1::WorkerState>(st));
    AddGauge(workers,
             {{"state", EnumLabel(v1::WorkerState_Name(static_cast<v1::WorkerState>(st)),
                                  "WORKER_STATE_")}},
             it == s.workers.end() ? 0 : static_cast<double>(it->second));
  }
  out.push_back(std::move(workers));
  auto gauge = [&](const std::string& name, const std::string& help, double value) {
    MetricFamily f = Family(name, help, MetricType::Gauge);
    AddGauge(f, {}, value);
    out.push_back(std::move(f));
  };
  gauge("retrain_worker_cpu_cores", "CPU cores of the workers that are not lost.",
        static_cast<double>(s.cpu_cores));
  gauge("retrain_worker_idle_cpu_cores", "CPU cores of idle workers.",
        static_cast<double>(s.idle_cpu_cores));
  gauge("retrain_worker_memory_bytes", "Host memory of the workers that are not lost.",
        static_cast<double>(s.memory_bytes));
  gauge("retrain_worker_free_memory_bytes", "Available host memory the workers last reported.",
        static_cast<double>(s.free_memory_bytes));
  gauge("retrain_worker_gpus", "GPUs of the workers that are not lost.",
        static_cast<double>(s.gpus));
  gauge("retrain_worker_gpu_memory_bytes", "GPU memory of the workers that are not lost.",
        static_cast<double>(s.gpu_memory_bytes));
  gauge("retrain_worker_free_gpu_memory_bytes", "Free GPU memory the workers last reported.",
        static_cast<double>(s.free_gpu_memory_bytes));
  gauge("retrain_tasks_leased_now", "Tasks a worker holds a lease on.",
        static_cast<double>(s.tasks_leased_now));
  gauge("retrain_tasks_pending_now", "Tasks waiting for a worker.",
        static_cast<double>(s.tasks_pending_now));

  out.push_back(TaskCounter("retrain_tasks_leased_total", "Leases handed to workers, by task kind.",
                            s.counters.tasks_leased));
  out.push_back(TaskCounter("retrain_tasks_retried_total",
                            "Tasks re-queued after a lost lease or a retryable failure.",
                            s.counters.tasks_retried));
  out.push_back(TaskCounter("retrain_tasks_failed_total",
                            "Tasks that failed their job (attempts used up or not retryable).",
                            s.counters.tasks_failed));
  auto counter = [&](const std::string& name, const std::string& help, double value) {
    MetricFamily f = Family(name, help, MetricType::Counter);
    AddCounter(f, {}, value);
    out.push_back(std::move(f));
  };
  counter("retrain_images_written_total", "Images written into shards.",
          static_cast<double>(s.counters.images_written));
  counter("retrain_images_converted_total",
          "Images re-encoded as baseline JPEG before they were written.",
          static_cast<double>(s.counters.images_converted));
  counter("retrain_images_skipped_total", "Files skipped as unusable images.",
          static_cast<double>(s.counters.images_skipped));

  MetricFamily rate = Family("retrain_training_examples_per_second",
                             "Training throughput of each running training job.",
                             MetricType::Gauge);
  MetricFamily loss =
      Family("retrain_training_loss", "Latest loss of each running training job.", MetricType::Gauge);
  MetricFamily step =
      Family("retrain_training_step", "Latest step of each running training job.", MetricType::Gauge);
  for (const auto& t : s.training) {
    AddGauge(rate, {{"job", t.job_id}}, t.examples_per_sec);
    AddGauge(loss, {{"job", t.job_id}}, t.loss);
    AddGauge(step, {{"job", t.job_id}}, static_cast<double>(t.step));
  }
  out.push_back(std::move(rate));
  out.push_back(std::move(loss));
  out.push_back(std::move(step));
  return out;
}

}  // namespace

Metrics::Metrics(const Coordinator& coordinator)
    : coordinator_(coordinator),
      registry_(std::make_shared<prometheus::Registry>()),
      rpc_requests_(prometheus::BuildCounter()
                        .Name("retrain_rpc_requests_total")
                        .Help("gRPC calls handled, by method and status code.")
                        .Register(*registry_)),
      rpc_seconds_(prometheus::BuildHistogram()
                       .Name("retrain_rpc_duration_seconds")
                       .Help("gRPC call durations, by method.")
                       .Register(*registry_)),
      http_requests_(prometheus::BuildCounter()
                         .Name("retrain_http_requests_total")
                         .Help("HTTP requests handled, by route and status.")
                         .Register(*registry_)),
      http_seconds_(prometheus::BuildHistogram()
                        .Name("retrain_http_duration_seconds")
                        .Help("HTTP request durations, by route.")
                        .Register(*registry_)) {}

void Metrics::ObserveRpc(const std::string& method, const std::string& code, double seconds) {
  rpc_requests_.Add({{"method", method}, {"code", code}}).Increment();
  rpc_seconds_.Add({{"method", method}}, LatencyBuckets()).Observe(seconds);
}

void Metrics::ObserveHttp(const std::string& route, int status, double seconds) {
  http_requests_.Add({{"route", route}, {"code", std::to_string(status)}}).Increment();
  http_seconds_.Add({{"route", route}}, LatencyBuckets()).Observe(seconds);
}

std::string Metrics::Render() const {
  std::vector<MetricFamily> families = CoordinatorFamilies(coordinator_.Stats());
  for (auto& f : registry_->Collect()) families.push_back(std::move(f));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace retrain::server
