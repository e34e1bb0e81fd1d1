// Network and disk faults during dataset builds, with the real coordinator
// and workers: a worker cut off from the coordinator, a worker whose lease
// ran out sending its results late, a disk that fills up and an output
// directory that turns read-only. Each ends with a complete dataset or a
// clear FAILED job, never a corrupt one.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/tfrecord.h"
#include "retrain/v1/worker_service.grpc.pb.h"
#include "tests/integration/build_fixtures.h"
#include "tests/support/cluster.h"
#include "tests/support/tcp_proxy.h"

namespace retrain::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<v1::Worker> Workers(Cluster& cluster) {
  grpc::ClientContext ctx;
  v1::ListWorkersResponse resp;
  EXPECT_TRUE(cluster.jobs().ListWorkers(&ctx, v1::ListWorkersRequest(), &resp).ok());
  return {resp.workers().begin(), resp.workers().end()};
}

// The worker with this pid, as the coordinator sees it.
std::optional<v1::Worker> WorkerWithPid(Cluster& cluster, pid_t pid) {
  for (const auto& w : Workers(cluster)) {
    if (w.pid() == pid) return w;
  }
  return std::nullopt;
}

bool HistorySays(const v1::Job& job, const std::string& text) {
  for (const auto& e : job.history()) {
    if (e.reason().find(text) != std::string::npos) return true;
  }
  return false;
}

// The build succeeds with every image of `tree` once and leaves no
// temporary behind.
void ExpectBuildSucceeds(Cluster& cluster, const v1::SubmitDatasetBuildRequest& req,
                         const Tree& tree) {
  const std::string& out = req.spec().output_directory();
  v1::Job job = cluster.WaitForEnd(Submit(cluster, req).id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  ExpectEachImageOnce(ReadDataset(out), tree);
  EXPECT_THAT(HiddenOrForeignFiles(out), IsEmpty());
}

// Waits until no worker holds a task, so that what the test then reads of
// the output is all there will be.
void WaitUntilWorkersIdle(Cluster& cluster) {
  EXPECT_TRUE(Eventually([&] {
    for (const auto& w : Workers(cluster)) {
      if (w.task_ids_size() > 0 && w.state() != v1::WORKER_STATE_LOST) return false;
    }
    return true;
  }));
}

TEST(NetworkFaultTest, ACutOffWorkerIsLostItsWorkRedoneAndItKeepsNoOutput) {
  TempDir dir;
  // Large images: validating and writing a shard of them outlasts the
  // moment between seeing the worker's lease and cutting its link.
  const Tree tree = WriteImages(dir.path(), {"a", "b", "c"}, 60, 15, 800, 600);
  ClusterOptions options;
  options.lease_timeout_ms = 3000;
  Cluster cluster(dir.path(), options);
  cluster.StartServer();
  TcpProxy link(cluster.port());
  Process& cut_off = cluster.StartWorker(1, -1, "127.0.0.1:" + std::to_string(link.port()));
  const std::string out = dir.path() + "/out";
  v1::Job job = Submit(cluster, BuildRequest(dir.path(), out, 6, 2));
  // Cut the link while the only worker holds a shard task and works on it: it has reported
  // progress, so the lease reached it (the coordinator lists the lease as soon as it grants it,
  // before the answer is on its way).
  cluster.WaitForJob(job.id(), [&](const v1::Job& j) {
    auto w = WorkerWithPid(cluster, cut_off.pid());
    return j.progress().phase() == "writing shards" && j.progress().done() > 0 && w &&
           w->task_ids_size() > 0;
  });
  link.Cut();
  Process& other = cluster.StartWorker(2);
  // The coordinator hears nothing from it for a lease and declares it lost.
  ASSERT_TRUE(Eventually([&] {
    auto w = WorkerWithPid(cluster, cut_off.pid());
    return w && w->state() == v1::WORKER_STATE_LOST;
  })) << cluster.ServerLog();
  job = cluster.WaitForEnd(job.id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  EXPECT_TRUE(HistorySays(job, "expired")) << job.DebugString();
  // The cut-off worker gave its lease up on its own before the coordinator
  // gave the task away: its heartbeats went unanswered ("not confirmed by
  // the coordinator for ... ms"), or the confirmation a shard task asks for
  // before it writes its output did not come ("not confirmed before
  // writing its output").
  const std::string log_path = dir.path() + "/worker-0.log";
  EXPECT_THAT(ReadAll(log_path), HasSubstr("not confirmed"));
  // Back on the network, it rejoins and works again. Depending on where the
  // cut caught it, it had dropped the task's output (abandoned) or finished
  // before and now has its late result refused.
  link.Heal();
  ASSERT_TRUE(Eventually([&] {
    auto w = WorkerWithPid(cluster, cut_off.pid());
    return w && w->state() != v1::WORKER_STATE_LOST;
  })) << cluster.ServerLog();
  EXPECT_TRUE(Eventually([&] {
    const std::string log = ReadAll(log_path);
    return log.find("abandoned") != std::string::npos ||
           log.find("result refused") != std::string::npos;
  })) << ReadAll(log_path);
  EXPECT_TRUE(cut_off.Running());
  DatasetView view = ReadDataset(out);
  ExpectEachImageOnce(view, tree);
  EXPECT_THAT(HiddenOrForeignFiles(out), IsEmpty());
  other.Signal(SIGKILL);
  other.Wait();
  // Alone again, it builds a (small) dataset by itself.
  const Tree small = WriteImages(dir.path() + "/small", {"a", "b"}, 6, 2);
  ExpectBuildSucceeds(cluster, BuildRequest(dir.path() + "/small", dir.path() + "/again", 2, 1),
                      small);
}

// A worker that holds a lease and then falls silent (as a cut-off or
// paused one does), speaking the worker protocol directly.
class SilentWorker {
 public:
  explicit SilentWorker(const std::string& address)
      : stub_(v1::WorkerService::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {
    v1::RegisterWorkerRequest req;
    req.set_hostname("silent");
    req.set_pid(1);
    req.set_version("test");
    req.mutable_resources()->set_threads(1);
    req.mutable_resources()->set_cpu_cores(1);
    v1::RegisterWorkerResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub_->RegisterWorker(&ctx, req, &resp).ok());
    id_ = resp.worker_id();
  }

  // Waits for a task and takes its lease.
  v1::Task Lease() {
    v1::LeaseTaskRequest req;
    req.set_worker_id(id_);
    req.set_wait_ms(10000);
    v1::LeaseTaskResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub_->LeaseTask(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.has_task());
    return resp.task();
  }

  v1::WorkerService::Stub& stub() { return *stub_; }
  const std::string& id() const { return id_; }

 private:
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  std::string id_;
};

TEST(NetworkFaultTest, ResultsSentAfterTheLeaseRanOutAreRefused) {
  TempDir dir;
  const Tree tree = WriteImages(dir.path(), {"a", "b"}, 10, 4);
  ClusterOptions options;
  options.lease_timeout_ms = 1500;
  Cluster cluster(dir.path(), options);
  cluster.StartServer();
  SilentWorker silent(cluster.address());
  const std::string out = dir.path() + "/out";
  v1::Job job = Submit(cluster, BuildRequest(dir.path(), out, 2, 1));
  // It checks the request as a worker would (the tree's labels), then
  // leases the first list task and goes silent.
  const v1::Task check = silent.Lease();
  ASSERT_TRUE(check.has_check_build()) << check.DebugString();
  v1::CompleteTaskRequest checked;
  checked.set_worker_id(silent.id());
  checked.set_task_id(check.id());
  checked.set_lease_id(check.lease_id());
  checked.mutable_result()->mutable_check_build()->add_labels("a");
  checked.mutable_result()->mutable_check_build()->add_labels("b");
  v1::CompleteTaskResponse checked_resp;
  grpc::ClientContext checked_ctx;
  ASSERT_TRUE(silent.stub().CompleteTask(&checked_ctx, checked, &checked_resp).ok());
  const v1::Task task = silent.Lease();
  ASSERT_TRUE(task.has_list()) << task.DebugString();
  cluster.StartWorker(1);
  job = cluster.WaitForJob(job.id(), [](const v1::Job& j) { return HistorySays(j, "expired"); });
  // Late results that would drop every file of the task (its directories
  // listed empty), from the worker whose lease expired: refused, and so are
  // its progress and failure.
  v1::CompleteTaskRequest late;
  late.set_worker_id(silent.id());
  late.set_task_id(task.id());
  late.set_lease_id(task.lease_id());
  for (int i = 0; i < task.list().labels_size(); ++i) {
    auto* listed = late.mutable_result()->mutable_list()->add_listed();
    listed->set_split(task.list().split());
    listed->set_label_index(task.list().first_label_index() + i);
    listed->set_files(0);
  }
  v1::CompleteTaskResponse complete_resp;
  grpc::ClientContext complete_ctx;
  grpc::Status s = silent.stub().CompleteTask(&complete_ctx, late, &complete_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("no longer valid"));
  v1::ReportProgressRequest progress;
  progress.set_worker_id(silent.id());
  progress.set_task_id(task.id());
  progress.set_lease_id(task.lease_id());
  v1::ReportProgressResponse progress_resp;
  grpc::ClientContext progress_ctx;
  ASSERT_TRUE(silent.stub().ReportProgress(&progress_ctx, progress, &progress_resp).ok());
  EXPECT_FALSE(progress_resp.keep_going());
  v1::FailTaskRequest fail;
  fail.set_worker_id(silent.id());
  fail.set_task_id(task.id());
  fail.set_lease_id(task.lease_id());
  fail.set_error("late failure");
  fail.set_retryable(false);
  v1::FailTaskResponse fail_resp;
  grpc::ClientContext fail_ctx;
  EXPECT_EQ(silent.stub().FailTask(&fail_ctx, fail, &fail_resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // Its next heartbeat is told the lease is gone.
  v1::HeartbeatRequest beat;
  beat.set_worker_id(silent.id());
  beat.add_lease_ids(task.lease_id());
  v1::HeartbeatResponse beat_resp;
  grpc::ClientContext beat_ctx;
  ASSERT_TRUE(silent.stub().Heartbeat(&beat_ctx, beat, &beat_resp).ok());
  EXPECT_THAT(beat_resp.revoked_lease_ids(), ::testing::ElementsAre(task.lease_id()));
  job = cluster.WaitForEnd(job.id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  ExpectEachImageOnce(ReadDataset(out), tree);
}

// A filesystem mounted for one test (tmpfs or a bind mount), unmounted
// when it goes away. Needs CAP_SYS_ADMIN: ok() is false elsewhere.
class Mount {
 public:
  // A tmpfs of `size` ("1m") at `target`.
  static Mount Tmpfs(const std::string& target, const std::string& size) {
    fs::create_directories(target);
    const std::string data = "size=" + size;
    return Mount(target, ::mount("tmpfs", target.c_str(), "tmpfs", 0, data.c_str()));
  }
  // `source` seen again at `target`.
  static Mount Bind(const std::string& source, const std::string& target) {
    fs::create_directories(target);
    return Mount(target, ::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr));
  }
  Mount(Mount&& other) noexcept : target_(std::move(other.target_)), error_(other.error_) {
    other.target_.clear();
  }
  ~Mount() {
    if (ok()) ::umount2(target_.c_str(), MNT_DETACH);
  }
  bool ok() const { return !target_.empty() && error_.empty(); }
  const std::string& error() const { return error_; }
  // Remounts with new options (MS_REMOUNT plus `flags`); false on failure.
  bool Remount(unsigned long flags, const std::string& data = "") {
    return ::mount(nullptr, target_.c_str(), nullptr, MS_REMOUNT | flags,
                   data.empty() ? nullptr : data.c_str()) == 0;
  }

 private:
  Mount(std::string target, int rc)
      : target_(std::move(target)),
        error_(rc == 0 ? "" : "mount " + target_ + ": " + std::strerror(errno)) {}
  std::string target_;
  std::string error_;
};

// Every shard file visible in `out` is whole: its records frame and check
// out to the end, and its index lists them all.
void ExpectVisibleShardsWhole(const std::string& out) {
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("train-", 0) != 0 && name.rfind("validation-", 0) != 0) continue;
    TfRecordReader reader;
    ASSERT_TRUE(reader.Open(e.path().string())) << reader.error();
    std::string record;
    int records = 0;
    TfRecordReader::Result r;
    while ((r = reader.Next(&record)) == TfRecordReader::Result::kRecord) ++records;
    EXPECT_EQ(r, TfRecordReader::Result::kEnd) << name << ": " << reader.error();
    const std::string index = ReadAll(out + "/index/" + name + ".idx");
    EXPECT_EQ(std::count(index.begin(), index.end(), '\n'), records) << name;
  }
}

TEST(DiskFaultTest, AFullDiskFailsTheBuildClearlyAndItSucceedsOnceThereIsRoom) {
  TempDir dir;
  const Tree tree = WriteImages(dir.path(), {"a", "b", "c"}, 30, 6, 400, 300);
  const std::string out = dir.path() + "/small-disk";
  Mount disk = Mount::Tmpfs(out, "1m");
  if (!disk.ok()) GTEST_SKIP() << disk.error() << " (needs root with CAP_SYS_ADMIN)";
  Cluster cluster(dir.path());
  cluster.StartServer();
  cluster.StartWorker(1);
  cluster.StartWorker(1);
  v1::Job job = Submit(cluster, BuildRequest(dir.path(), out, 4, 1));
  job = cluster.WaitForEnd(job.id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_FAILED) << job.DebugString();
  EXPECT_THAT(job.error(), HasSubstr("No space left on device"));
  EXPECT_THAT(job.error(), HasSubstr(out));
  WaitUntilWorkersIdle(cluster);
  // Nothing half-written is left once the other worker has heard that the
  // job failed (its next heartbeat), and no dataset.json claims a dataset.
  EXPECT_FALSE(fs::exists(out + "/dataset.json"));
  EXPECT_TRUE(Eventually([&] { return HiddenOrForeignFiles(out).empty(); },
                         std::chrono::seconds(20)))
      << ::testing::PrintToString(HiddenOrForeignFiles(out));
  ExpectVisibleShardsWhole(out);
  // With room, the same request builds the whole dataset.
  ASSERT_TRUE(disk.Remount(0, "size=64m")) << std::strerror(errno);
  ExpectBuildSucceeds(cluster, BuildRequest(dir.path(), out, 4, 1), tree);
}

TEST(DiskFaultTest, AnOutputDirectoryTurnedReadOnlyMidBuildFailsClearly) {
  TempDir dir;
  const Tree tree = WriteImages(dir.path(), {"a", "b", "c"}, 80, 10, 400, 300);
  fs::create_directories(dir.path() + "/disk");
  const std::string out = dir.path() + "/out";
  Mount view = Mount::Bind(dir.path() + "/disk", out);
  if (!view.ok()) GTEST_SKIP() << view.error() << " (needs root with CAP_SYS_ADMIN)";
  Cluster cluster(dir.path());
  cluster.StartServer();
  cluster.StartWorker(1);
  v1::Job job = Submit(cluster, BuildRequest(dir.path(), out, 24, 2));
  WaitUntilAShardIsWritten(cluster, job.id());
  // The kernel refuses while a file is open for writing there (EBUSY): try,
  // without pausing, until a moment between two shards.
  bool read_only = false;
  for (const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
       !read_only && std::chrono::steady_clock::now() < give_up;) {
    read_only = view.Remount(MS_BIND | MS_RDONLY);
  }
  ASSERT_TRUE(read_only) << std::strerror(errno);
  ASSERT_FALSE(cluster.JobEnded(job.id())) << "the build ended before its output turned read-only";
  job = cluster.WaitForEnd(job.id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_FAILED) << job.DebugString();
  EXPECT_THAT(job.error(), HasSubstr("Read-only file system"));
  EXPECT_THAT(job.error(), HasSubstr(out));
  WaitUntilWorkersIdle(cluster);
  // Visible files are whole; temporaries the worker could not remove from a
  // read-only directory stay hidden until the next build clears them.
  EXPECT_FALSE(fs::exists(out + "/dataset.json"));
  ExpectVisibleShardsWhole(out);
  ASSERT_TRUE(view.Remount(MS_BIND)) << std::strerror(errno);
  ExpectBuildSucceeds(cluster, BuildRequest(dir.path(), out, 24, 2), tree);
}

}  // namespace
}  // namespace retrain::testing
