// retrain-bench-load: a bounded load test of a running retrain-server.
//
//   retrain-bench-load --server 127.0.0.1:PORT --seconds 60 --server_pid PID
//       --train_directory D --validation_directory D --labels_file F
//       --output_root DIR [--clients 200] [--workers 100] [--json_out FILE]
//
// For --seconds it runs, each on its own channel (its own TCP connection, as
// separate processes would have):
//  - --clients client threads. Each waits an exponentially distributed think
//    time (mean --think_ms), then does one of: SubmitDatasetBuild (10 %) of
//    the given folders into a fresh directory under --output_root, GetJob
//    (40 %) or WatchJob (20 %) of a job this run submitted, ListJobs (30 %,
//    the newest 50, alternately full and summary_only; also instead of a
//    GetJob or WatchJob while this run has no job yet). A watch reads
//    snapshots for --watch_ms, then cancels its stream.
//  - --workers fake workers, shaped like retrain-worker: RegisterWorker, a
//    Heartbeat every heartbeat_interval_ms (the server's figure), LeaseTask
//    long-polls of 2000 ms. They run nothing: a worker that gets a task
//    holds it for --hold_ms (heartbeating its lease, one ReportProgress
//    with done = 0), then hands it back with FailTask(retryable = true), so
//    the coordinator re-queues it; after its attempts run out the job
//    fails. No result is ever claimed for work not done.
//  - a sampler reading VmRSS and Threads from /proc/--server_pid/status once
//    a second, and the server's CPU time from /proc/--server_pid/stat.
//
// Every call has a deadline (--deadline_ms past any long-poll wait). Per
// method it records calls, latency percentiles and status codes. A call's
// "overdue" time is its latency minus the wait it asked for (LeaseTask's
// wait_ms; 0 for every other call; for WatchJob, the time to the first
// snapshot); the largest is the run's starvation figure. A watch stream
// that ends with an error after its first snapshot is counted under
// "WatchJob (stream end)"; one this program cancelled is not an error.
//
// Prints a table per method on stdout and writes every figure to
// --json_out. Exits 0 when the run completed (bench/load.sh judges the
// figures), 1 when the server does not answer or --json_out cannot be
// written.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "retrain/v1/job_service.grpc.pb.h"
#include "retrain/v1/worker_service.grpc.pb.h"

namespace {

namespace v1 = retrain::v1;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Options {
  std::string server;
  int seconds = 60;
  int clients = 200;
  int workers = 100;
  int think_ms = 500;
  int watch_ms = 2000;
  int hold_ms = 2000;
  int lease_wait_ms = 2000;
  int deadline_ms = 10000;
  int server_pid = 0;
  std::string train_directory, validation_directory, labels_file, output_root;
  std::string json_out;
  uint64_t seed = 1;
};

// Names of grpc::StatusCode values, in their numeric order.
// clang-format off
constexpr const char* kCodeNames[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"};
// clang-format on

const char* CodeName(grpc::StatusCode code) {
  const auto i = static_cast<size_t>(code);
  return i < std::size(kCodeNames) ? kCodeNames[i] : "OTHER";
}

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// What one thread saw. Owned by that thread until it ends, then merged.
struct Recorder {
  struct Method {
    std::vector<double> latency_ms;
    std::map<std::string, int64_t> codes;
    std::string first_error;  // the message of the first non-OK answer
  };
  std::map<std::string, Method> methods;
  double max_overdue_ms = 0;
  std::string max_overdue_method;
  int64_t tasks_leased = 0, tasks_handed_back = 0, leases_revoked = 0, jobs_submitted = 0;

  // `asked_ms`: the wait the call asked the server for (long-polls).
  // Refusals by the server's limits (RESOURCE_EXHAUSTED) are kept apart, as
  // "<method> (refused)", so that they do not dilute the method's latency.
  void Add(const std::string& method, const grpc::Status& s, double ms, double asked_ms = 0) {
    const bool refused = s.error_code() == grpc::RESOURCE_EXHAUSTED;
    const std::string name = refused ? method + " (refused)" : method;
    Method& m = methods[name];
    m.latency_ms.push_back(ms);
    ++m.codes[CodeName(s.error_code())];
    if (!s.ok() && m.first_error.empty()) m.first_error = s.error_message();
    if (ms - asked_ms > max_overdue_ms) {
      max_overdue_ms = ms - asked_ms;
      max_overdue_method = name;
    }
  }

  void Merge(const Recorder& o) {
    for (const auto& [name, m] : o.methods) {
      Method& into = methods[name];
      into.latency_ms.insert(into.latency_ms.end(), m.latency_ms.begin(), m.latency_ms.end());
      for (const auto& [code, n] : m.codes) into.codes[code] += n;
      if (into.first_error.empty()) into.first_error = m.first_error;
    }
    if (o.max_overdue_ms > max_overdue_ms) {
      max_overdue_ms = o.max_overdue_ms;
      max_overdue_method = o.max_overdue_method;
    }
    tasks_leased += o.tasks_leased;
    tasks_handed_back += o.tasks_handed_back;
    leases_revoked += o.leases_revoked;
    jobs_submitted += o.jobs_submitted;
  }
};

// Ends the run: every thread checks it between calls and sleeps on it.
// Thread-safe.
class StopFlag {
 public:
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }
  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_;
  }
  // Sleeps up to `ms`; false when the run ended meanwhile.
  bool SleepFor(double ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return !cv_.wait_for(lock, std::chrono::duration<double, std::milli>(ms),
                         [&] { return stopped_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;  // guarded by mu_
};

// Ids of the jobs this run submitted, for GetJob and WatchJob. Thread-safe.
class JobPool {
 public:
  void Add(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    ids_.push_back(id);
  }
  // One of the newest 500, or "" while there is none.
  std::string Pick(std::mt19937_64& rng) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ids_.empty()) return "";
    const size_t n = std::min<size_t>(ids_.size(), 500);
    return ids_[ids_.size() - 1 - std::uniform_int_distribution<size_t>(0, n - 1)(rng)];
  }

 private:
  std::mutex mu_;
  std::vector<std::string> ids_;  // guarded by mu_
};

// A channel of its own: a separate subchannel pool means a separate
// connection, as a separate process would open.
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& server) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
}

// A client context whose deadline is `deadline_ms` from now.
struct Context {
  explicit Context(int deadline_ms) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
  }
  grpc::ClientContext ctx;
};

void RunClient(const Options& o, int index, StopFlag& stop, JobPool& pool, Recorder& rec) {
  auto stub = v1::JobService::NewStub(OwnChannel(o.server));
  std::mt19937_64 rng(o.seed * 1000003 + index);
  std::exponential_distribution<double> think(1.0 / std::max(o.think_ms, 1));
  std::uniform_int_distribution<int> percent(0, 99);
  int submitted = 0, lists = 0;
  while (stop.SleepFor(think(rng))) {
    const int roll = percent(rng);
    std::string job_id = pool.Pick(rng);
    if (roll < 10) {
      v1::SubmitDatasetBuildRequest req;
      const std::string name = "c" + std::to_string(index) + "-" + std::to_string(submitted++);
      req.set_request_id("load-" + name);
      auto* spec = req.mutable_spec();
      spec->set_train_directory(o.train_directory);
      spec->set_validation_directory(o.validation_directory);
      spec->set_labels_file(o.labels_file);
      spec->set_output_directory(o.output_root + "/" + name);
      spec->set_train_shards(2);
      spec->set_validation_shards(1);
      v1::Job job;
      Context c(o.deadline_ms);
      const auto t0 = Clock::now();
      grpc::Status s = stub->SubmitDatasetBuild(&c.ctx, req, &job);
      rec.Add("SubmitDatasetBuild", s, MsSince(t0));
      if (s.ok()) {
        pool.Add(job.id());
        ++rec.jobs_submitted;
      }
    } else if (roll < 50 && !job_id.empty()) {
      v1::GetJobRequest req;
      req.set_job_id(job_id);
      v1::Job job;
      Context c(o.deadline_ms);
      const auto t0 = Clock::now();
      grpc::Status s = stub->GetJob(&c.ctx, req, &job);
      rec.Add("GetJob", s, MsSince(t0));
    } else if (roll < 80 || job_id.empty()) {
      v1::ListJobsRequest req;
      req.set_page_size(50);
      req.set_summary_only(lists++ % 2 == 1);
      v1::ListJobsResponse resp;
      Context c(o.deadline_ms);
      const auto t0 = Clock::now();
      grpc::Status s = stub->ListJobs(&c.ctx, req, &resp);
      rec.Add("ListJobs", s, MsSince(t0));
    } else {
      // The stream itself lives for --watch_ms past its first snapshot
      // (the deadline only guards against an answer that never comes).
      v1::WatchJobRequest req;
      req.set_job_id(job_id);
      Context c(o.deadline_ms + o.watch_ms);
      const auto t0 = Clock::now();
      auto reader = stub->WatchJob(&c.ctx, req);
      v1::JobUpdate update;
      if (!reader->Read(&update)) {
        grpc::Status s = reader->Finish();
        rec.Add("WatchJob", s, MsSince(t0));
        continue;
      }
      rec.Add("WatchJob", grpc::Status::OK, MsSince(t0));
      const auto until = Clock::now() + std::chrono::milliseconds(o.watch_ms);
      bool ended = false;
      while (Clock::now() < until && !stop.stopped()) {
        if (!reader->Read(&update)) {
          ended = true;
          break;
        }
      }
      if (!ended) c.ctx.TryCancel();
      grpc::Status s = reader->Finish();
      // A stream ends OK after a final state, CANCELLED when we closed it.
      if (!s.ok() && !(s.error_code() == grpc::CANCELLED && !ended)) {
        rec.Add("WatchJob (stream end)", s, 0);
      }
    }
  }
}

// `task_seen`: set once any worker got a task. Leases that started before
// are recorded as "LeaseTask (first task)": they waited for the first work
// to be planned, not for the server.
void RunWorker(const Options& o, int index, StopFlag& stop, std::atomic<bool>& task_seen,
               Recorder& rec) {
  auto stub = v1::WorkerService::NewStub(OwnChannel(o.server));
  v1::RegisterWorkerRequest reg;
  reg.set_hostname("bench-worker-" + std::to_string(index));
  reg.set_pid(getpid());
  reg.set_version("retrain-bench-load");
  auto* r = reg.mutable_resources();
  r->set_cpu_cores(2);
  r->set_memory_bytes(int64_t{4} << 30);
  r->set_free_memory_bytes(int64_t{2} << 30);
  r->set_threads(1);

  std::string worker_id;
  int heartbeat_ms = 2000;
  auto do_register = [&] {
    v1::RegisterWorkerResponse resp;
    Context c(o.deadline_ms);
    const auto t0 = Clock::now();
    grpc::Status s = stub->RegisterWorker(&c.ctx, reg, &resp);
    rec.Add("RegisterWorker", s, MsSince(t0));
    if (!s.ok()) return false;
    worker_id = resp.worker_id();
    if (resp.heartbeat_interval_ms() > 0) heartbeat_ms = resp.heartbeat_interval_ms();
    return true;
  };
  while (!do_register()) {
    if (!stop.SleepFor(500)) return;
  }

  v1::Task held;  // the task this worker holds; id 0: none
  auto release_at = Clock::now();
  auto next_heartbeat = Clock::now() + std::chrono::milliseconds(heartbeat_ms);
  auto hand_back = [&] {
    v1::FailTaskRequest req;
    req.set_worker_id(worker_id);
    req.set_task_id(held.id());
    req.set_lease_id(held.lease_id());
    req.set_error("retrain-bench-load: a fake worker; the task was not run");
    req.set_retryable(true);
    v1::FailTaskResponse resp;
    Context c(o.deadline_ms);
    const auto t0 = Clock::now();
    grpc::Status s = stub->FailTask(&c.ctx, req, &resp);
    rec.Add("FailTask", s, MsSince(t0));
    if (s.ok()) ++rec.tasks_handed_back;
    held.Clear();
  };

  while (!stop.stopped()) {
    if (Clock::now() >= next_heartbeat) {
      v1::HeartbeatRequest req;
      req.set_worker_id(worker_id);
      *req.mutable_resources() = reg.resources();
      if (held.id() != 0) req.add_lease_ids(held.lease_id());
      v1::HeartbeatResponse resp;
      Context c(std::max(heartbeat_ms, 1000));
      const auto t0 = Clock::now();
      grpc::Status s = stub->Heartbeat(&c.ctx, req, &resp);
      rec.Add("Heartbeat", s, MsSince(t0));
      next_heartbeat = Clock::now() + std::chrono::milliseconds(heartbeat_ms);
      if (s.error_code() == grpc::NOT_FOUND) {
        held.Clear();
        do_register();
        continue;
      }
      for (int64_t lease : resp.revoked_lease_ids()) {
        if (held.id() != 0 && lease == held.lease_id()) {
          ++rec.leases_revoked;
          held.Clear();
        }
      }
    }
    if (held.id() != 0) {
      if (Clock::now() >= release_at) {
        hand_back();
        continue;
      }
      stop.SleepFor(std::chrono::duration<double, std::milli>(std::min(release_at, next_heartbeat) -
                                                              Clock::now())
                        .count());
      continue;
    }
    v1::LeaseTaskRequest req;
    req.set_worker_id(worker_id);
    req.set_wait_ms(o.lease_wait_ms);
    v1::LeaseTaskResponse resp;
    Context c(o.lease_wait_ms + o.deadline_ms);
    const bool before_first_task = !task_seen.load();
    const auto t0 = Clock::now();
    grpc::Status s = stub->LeaseTask(&c.ctx, req, &resp);
    const char* name = !resp.has_task()    ? "LeaseTask (no task)"
                       : before_first_task ? "LeaseTask (first task)"
                                           : "LeaseTask (task)";
    rec.Add(name, s, MsSince(t0), o.lease_wait_ms);
    if (resp.has_task()) task_seen = true;
    if (s.error_code() == grpc::NOT_FOUND) {
      do_register();
      continue;
    }
    if (!s.ok() || !resp.has_task()) continue;
    held = resp.task();
    ++rec.tasks_leased;
    release_at = Clock::now() + std::chrono::milliseconds(o.hold_ms);
    v1::ReportProgressRequest progress;
    progress.set_worker_id(worker_id);
    progress.set_task_id(held.id());
    progress.set_lease_id(held.lease_id());
    v1::ReportProgressResponse presp;
    Context pc(o.deadline_ms);
    const auto p0 = Clock::now();
    grpc::Status ps = stub->ReportProgress(&pc.ctx, progress, &presp);
    rec.Add("ReportProgress", ps, MsSince(p0));
    if (ps.ok() && !presp.keep_going()) {
      ++rec.leases_revoked;
      held.Clear();
    }
  }
  if (held.id() != 0) hand_back();
}

// A number field of /proc/`pid`/status ("VmRSS" in KiB, "Threads"); -1
// when it cannot be read.
int64_t ReadStatusField(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}

// User + system CPU seconds of `pid`; -1 when it cannot be read.
double ReadCpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {  // fields 14 and 15: utime, stime
    if (i == 14) utime = std::stoll(f);
    if (i == 15) stime = std::stoll(f);
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(p / 100 * sorted.size()));
  return sorted[std::min(sorted.size(), std::max<size_t>(rank, 1)) - 1];
}

// Unfinished jobs and their tasks as the server reports them once the load
// has stopped (every held task handed back).
json QueueAtEnd(const Options& o) {
  auto stub = v1::JobService::NewStub(OwnChannel(o.server));
  int64_t jobs = 0, queued = 0, pending_tasks = 0, running_tasks = 0;
  v1::ListJobsRequest req;
  req.add_states(v1::JOB_STATE_QUEUED);
  req.add_states(v1::JOB_STATE_RUNNING);
  req.set_page_size(1000);
  req.set_summary_only(true);
  do {
    v1::ListJobsResponse resp;
    Context c(30000);
    grpc::Status s = stub->ListJobs(&c.ctx, req, &resp);
    if (!s.ok()) return {{"error", s.error_message()}};
    for (const auto& job : resp.jobs()) {
      ++jobs;
      queued += job.state() == v1::JOB_STATE_QUEUED;
      const auto& p = job.progress();
      pending_tasks += p.tasks_total() - p.tasks_done() - p.tasks_running();
      running_tasks += p.tasks_running();
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return {{"unfinished_jobs", jobs},
          {"queued_jobs", queued},
          {"pending_tasks", pending_tasks},
          {"running_tasks", running_tasks}};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "retrain-bench-load: a bounded load test of a running retrain-server (clients "
      "submitting, listing, getting and watching jobs; fake workers that lease tasks "
      "and hand them back). See bench/README.md."};
  app.add_option("--server", o.server, "HOST:PORT of the retrain-server")->required();
  app.add_option("--seconds", o.seconds, "How long the load runs")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--clients", o.clients, "Client threads")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--workers", o.workers, "Fake worker threads")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--think_ms", o.think_ms, "Mean pause of a client between calls")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--watch_ms", o.watch_ms, "How long a WatchJob stream is read")
      ->capture_default_str()
      ->check(CLI::Range(0, 600000));
  app.add_option("--hold_ms", o.hold_ms,
                 "How long a fake worker holds a task before handing it back")
      ->capture_default_str()
      ->check(CLI::Range(0, 600000));
  app.add_option("--lease_wait_ms", o.lease_wait_ms,
                 "LeaseTask long-poll wait (retrain-worker: 2000)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  app.add_option("--deadline_ms", o.deadline_ms, "Deadline of every call, past any long-poll wait")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--server_pid", o.server_pid, "Process id of the server, for its memory (0: none)")
      ->capture_default_str();
  app.add_option("--train_directory", o.train_directory, "Train folder the builds read")
      ->required();
  app.add_option("--validation_directory", o.validation_directory, "Validation folder")->required();
  app.add_option("--labels_file", o.labels_file, "Labels file")->required();
  app.add_option("--output_root", o.output_root, "Each build gets a fresh directory under this one")
      ->required();
  app.add_option("--json_out", o.json_out, "Write every figure here as JSON");
  app.add_option("--seed", o.seed, "Seed of the clients' choices")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  {  // The server must answer before the clock starts.
    auto stub = v1::JobService::NewStub(OwnChannel(o.server));
    v1::ListWorkersRequest req;
    v1::ListWorkersResponse resp;
    Context c(10000);
    c.ctx.set_wait_for_ready(true);
    grpc::Status s = stub->ListWorkers(&c.ctx, req, &resp);
    if (!s.ok()) {
      std::fprintf(stderr, "retrain-bench-load: %s does not answer: %s\n", o.server.c_str(),
                   s.error_message().c_str());
      return 1;
    }
  }

  StopFlag stop;
  JobPool pool;
  std::atomic<bool> task_seen{false};
  // The sampler's until it is joined.
  std::vector<std::pair<double, int64_t>> rss;  // (seconds, KiB)
  int64_t threads_start = -1, threads_peak = -1;
  const double cpu_start = o.server_pid > 0 ? ReadCpuSeconds(o.server_pid) : -1;
  const auto start = Clock::now();
  std::thread sampler([&] {
    do {
      if (o.server_pid <= 0) break;
      const int64_t kib = ReadStatusField(o.server_pid, "VmRSS");
      if (kib >= 0) rss.emplace_back(MsSince(start) / 1000, kib);
      const int64_t n = ReadStatusField(o.server_pid, "Threads");
      if (threads_start < 0) threads_start = n;
      threads_peak = std::max(threads_peak, n);
    } while (stop.SleepFor(1000));
  });
  std::vector<Recorder> recorders(o.clients + o.workers);
  std::vector<std::thread> threads;
  for (int i = 0; i < o.workers; ++i) {
    threads.emplace_back(RunWorker, std::cref(o), i, std::ref(stop), std::ref(task_seen),
                         std::ref(recorders[i]));
  }
  for (int i = 0; i < o.clients; ++i) {
    threads.emplace_back(RunClient, std::cref(o), i, std::ref(stop), std::ref(pool),
                         std::ref(recorders[o.workers + i]));
  }
  std::this_thread::sleep_for(std::chrono::seconds(o.seconds));
  stop.Stop();
  const double load_seconds = MsSince(start) / 1000;
  for (auto& t : threads) t.join();
  sampler.join();
  const double cpu_end = o.server_pid > 0 ? ReadCpuSeconds(o.server_pid) : -1;
  const double drain_seconds = MsSince(start) / 1000 - load_seconds;

  // Per-thread longest overdue answers: how many threads waited > 1 s once.
  Recorder all;
  int threads_over_1s = 0;
  for (const auto& r : recorders) {
    all.Merge(r);
    threads_over_1s += r.max_overdue_ms > 1000;
  }
  json out;
  out["config"] = {{"server", o.server},          {"seconds", o.seconds},
                   {"clients", o.clients},        {"workers", o.workers},
                   {"think_ms", o.think_ms},      {"watch_ms", o.watch_ms},
                   {"hold_ms", o.hold_ms},        {"lease_wait_ms", o.lease_wait_ms},
                   {"deadline_ms", o.deadline_ms}};
  out["load_seconds"] = load_seconds;
  out["drain_seconds"] = drain_seconds;
  int64_t calls = 0, deadline_exceeded = 0;
  std::printf("%-22s %8s %8s %9s %9s %9s %9s  %s\n", "method", "calls", "per s", "p50 ms", "p90 ms",
              "p99 ms", "max ms", "codes");
  for (auto& [name, m] : all.methods) {
    std::sort(m.latency_ms.begin(), m.latency_ms.end());
    const auto n = static_cast<int64_t>(m.latency_ms.size());
    calls += n;
    deadline_exceeded += m.codes.count("DEADLINE_EXCEEDED") ? m.codes["DEADLINE_EXCEEDED"] : 0;
    json j = {{"calls", n},
              {"per_s", n / load_seconds},
              {"p50_ms", Percentile(m.latency_ms, 50)},
              {"p90_ms", Percentile(m.latency_ms, 90)},
              {"p99_ms", Percentile(m.latency_ms, 99)},
              {"max_ms", m.latency_ms.empty() ? 0.0 : m.latency_ms.back()},
              {"codes", m.codes}};
    if (!m.first_error.empty()) j["first_error"] = m.first_error;
    std::string codes;
    for (const auto& [code, count] : m.codes) {
      codes += (codes.empty() ? "" : " ") + code + "=" + std::to_string(count);
    }
    std::printf("%-22s %8lld %8.1f %9.1f %9.1f %9.1f %9.1f  %s\n", name.c_str(),
                static_cast<long long>(n), n / load_seconds, j["p50_ms"].get<double>(),
                j["p90_ms"].get<double>(), j["p99_ms"].get<double>(), j["max_ms"].get<double>(),
                codes.c_str());
    out["methods"][name] = std::move(j);
  }
  out["calls"] = calls;
  out["calls_per_s"] = calls / load_seconds;
  out["starvation"] = {{"max_overdue_ms", all.max_overdue_ms},
                       {"max_overdue_method", all.max_overdue_method},
                       {"threads_over_1s", threads_over_1s},
                       {"deadline_exceeded", deadline_exceeded}};
  out["work"] = {{"jobs_submitted", all.jobs_submitted},
                 {"tasks_leased", all.tasks_leased},
                 {"tasks_handed_back", all.tasks_handed_back},
                 {"leases_revoked", all.leases_revoked}};
  out["queue_at_end"] = QueueAtEnd(o);
  if (!rss.empty()) {
    // Growth over the second half: the last sample against the one at half time.
    const auto mid = std::find_if(rss.begin(), rss.end(),
                                  [&](const auto& s) { return s.first >= load_seconds / 2; });
    const int64_t mid_kib = mid == rss.end() ? rss.back().second : mid->second;
    int64_t peak = 0;
    json samples = json::array();
    for (const auto& [t, kib] : rss) {
      peak = std::max(peak, kib);
      samples.push_back({std::round(t * 10) / 10, kib});
    }
    out["server_rss_kib"] = {
        {"start", rss.front().second},
        {"mid", mid_kib},
        {"peak", peak},
        {"end", rss.back().second},
        {"second_half_growth_pct", 100.0 * (rss.back().second - mid_kib) / mid_kib},
        {"samples", samples}};
  }
  if (cpu_start >= 0 && cpu_end >= 0) out["server_cpu_seconds"] = cpu_end - cpu_start;
  if (threads_peak >= 0) {
    out["server_threads"] = {{"start", threads_start}, {"peak", threads_peak}};
  }
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  out["bench_cpu_seconds"] = self.ru_utime.tv_sec + self.ru_stime.tv_sec +
                             (self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6;
  std::printf(
      "calls: %lld (%.1f/s) in %.1f s; longest overdue answer %.1f ms (%s); "
      "threads that waited > 1 s: %d; jobs submitted %lld, tasks leased %lld\n",
      static_cast<long long>(calls), calls / load_seconds, load_seconds, all.max_overdue_ms,
      all.max_overdue_method.c_str(), threads_over_1s, static_cast<long long>(all.jobs_submitted),
      static_cast<long long>(all.tasks_leased));
  if (!o.json_out.empty()) {
    std::ofstream f(o.json_out);
    f << out.dump(1) << "\n";
    if (!f) {
      std::fprintf(stderr, "retrain-bench-load: cannot write %s\n", o.json_out.c_str());
      return 1;
    }
  }
  return 0;
}
