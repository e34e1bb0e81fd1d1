// End-to-end dataset builds with the real coordinator, workers and CLI.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/files.h"
#include "common/hashing.h"
#include "common/job_states.h"
#include "tests/integration/build_fixtures.h"
#include "tests/integration/dataset_check.h"
#include "tests/support/cluster.h"
#include "tests/support/test_images.h"
#include "tests/support/two_host_network.h"

namespace retrain::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;
using ::testing::HasSubstr;
using namespace retrain::test_images;  // NOLINT: image factories

grpc::Status SubmitStatus(Cluster& cluster, const v1::SubmitDatasetBuildRequest& req) {
  grpc::ClientContext ctx;
  v1::Job job;
  return cluster.jobs().SubmitDatasetBuild(&ctx, req, &job);
}

void ExpectValidRecords(const DatasetView& view) {
  const std::vector<std::string> keys = {
      "image/channels",   "image/class/label", "image/class/text", "image/colorspace",
      "image/encoded",    "image/filename",    "image/format",     "image/height",
      "image/width"};
  for (const auto& r : view.records) {
    ASSERT_EQ(r.keys, keys);
    EXPECT_EQ(r.bytes.at("image/colorspace"), "RGB");
    EXPECT_EQ(r.bytes.at("image/format"), "JPEG");
    EXPECT_EQ(r.ints.at("image/channels"), 3);
    JpegInfo info = ReadJpegInfo(r.bytes.at("image/encoded"));
    EXPECT_TRUE(info.ok) << r.bytes.at("image/filename");
    EXPECT_EQ(info.components, 3);
    EXPECT_TRUE(info.ycbcr);
    EXPECT_FALSE(info.progressive);
    EXPECT_EQ(info.width, r.ints.at("image/width"));
    EXPECT_EQ(info.height, r.ints.at("image/height"));
  }
}

class BuildDatasetTest : public ::testing::Test {
 protected:
  TempDir dir_;
  const std::string& root() { return dir_.path(); }
};

TEST_F(BuildDatasetTest, WritesShardsWithTheReferenceFeatures) {
  Tree tree = WriteImages(root(), {"cat", "dog", "fish"}, 12, 4);
  Cluster cluster(root());
  cluster.StartServer();
  cluster.StartWorker(2);
  cluster.StartWorker(1);
  const std::string out = root() + "/out";
  CommandResult r = cluster.Cli(
      {"build-dataset", "--train_directory", root() + "/data/train", "--validation_directory",
       root() + "/data/validation", "--output_directory", out, "--labels_file",
       root() + "/data/labels.txt", "--train_shards", "4", "--validation_shards", "3", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << cluster.ServerLog();
  EXPECT_THAT(r.out, HasSubstr("SUCCEEDED"));
  EXPECT_THAT(r.out, HasSubstr("train-00003-of-00004"));

  DatasetView view = ReadDataset(out);
  ExpectValidRecords(view);
  ExpectEachImageOnce(view, tree);
  // Labels as the reference numbers them: line N is label N, 0 is background.
  const std::map<std::string, int64_t> ids = {{"cat", 1}, {"dog", 2}, {"fish", 3}};
  for (const auto& rec : view.records) {
    EXPECT_EQ(rec.ints.at("image/class/label"), ids.at(rec.bytes.at("image/class/text")));
    const std::string split = rec.shard.rfind("train-", 0) == 0 ? "train" : "validation";
    const std::string rel =
        split + "/" + rec.bytes.at("image/class/text") + "/" + rec.bytes.at("image/filename");
    if (rel.size() > 4 && rel.substr(rel.size() - 4) == ".jpg") {
      EXPECT_EQ(rec.bytes.at("image/encoded"), tree.at(rel)) << "JPEG stored byte for byte";
    } else {
      EXPECT_NE(rec.bytes.at("image/encoded"), tree.at(rel)) << "PNG re-encoded";
    }
  }
  // Shards of a split differ in size by at most one record.
  for (const auto& [split, info] : view.manifest["splits"].items()) {
    int64_t lo = INT64_MAX, hi = 0;
    for (const auto& s : info["shards"]) {
      lo = std::min(lo, s["num_records"].get<int64_t>());
      hi = std::max(hi, s["num_records"].get<int64_t>());
    }
    EXPECT_LE(hi - lo, 1) << split;
  }
  EXPECT_EQ(view.manifest["splits"]["train"]["num_records"], 36);
  EXPECT_EQ(view.manifest["splits"]["validation"]["num_records"], 12);
  EXPECT_EQ(view.manifest["num_classes"], 4);
  EXPECT_EQ(view.manifest["splits"]["train"]["class_counts"][1]["count"], 12);
  EXPECT_EQ(*ReadFile(out + "/labels.txt"), "0:background\n1:cat\n2:dog\n3:fish\n");
  EXPECT_THAT(HiddenOrForeignFiles(out), ::testing::IsEmpty());

  // An independent reader (Python, crcmod's CRC-32C, a hand-written
  // protobuf parser) accepts the shards too.
  CommandResult verify = RunCommand(
      {"/usr/bin/python3", SourceDir() + "/bench/pillow_build.py", "--verify", out});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_THAT(verify.out, HasSubstr("\"records\": 48"));
}

TEST_F(BuildDatasetTest, OutputIsIdenticalWhateverTheWorkersAndThreads) {
  WriteImages(root(), {"a", "b"}, 15, 5);
  std::map<std::string, std::string> first_shards, first_index;
  for (int round = 0; round < 2; ++round) {
    Cluster cluster(root());
    cluster.StartServer();
    if (round == 0) {
      cluster.StartWorker(1);
    } else {
      cluster.StartWorker(3);
      cluster.StartWorker(2);
    }
    const std::string out = root() + "/out" + std::to_string(round);
    v1::Job job = Submit(cluster, BuildRequest(root(), out, 3, 2));
    job = cluster.WaitForEnd(job.id());
    ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
    DatasetView view = ReadDataset(out);
    if (round == 0) {
      first_shards = view.shard_bytes;
      first_index = view.index_bytes;
    } else {
      EXPECT_EQ(view.shard_bytes, first_shards);
      EXPECT_EQ(view.index_bytes, first_index);
    }
  }
  EXPECT_EQ(first_shards.size(), 5u);
}

// The coordinator and a worker on one host, a worker and the CLI on another
// (network namespaces), one directory tree shared as a network file system
// would share it: both workers write shards, and the dataset is byte for
// byte what one worker builds.
TEST_F(BuildDatasetTest, WorkersOnTwoHostsBuildWhatOneWorkerBuilds) {
  const TwoHostNetwork network;
  if (!network.ok()) GTEST_SKIP() << network.error() << " (needs root and iproute2)";
  // Large enough that a shard takes the one worker a while: the other
  // takes the next.
  WriteImages(root(), {"a", "b", "c"}, 24, 8, 320, 240);
  // Off loopback the coordinator asks for tokens.
  const std::string client_token = TokenFile(root(), "client", "client-secret");
  const std::string worker_token = TokenFile(root(), "worker", "worker-secret");
  const std::string address = network.address(0) + ":" + std::to_string(FreePort());
  auto server = Process::Start(
      network.On(0, {BinDir() + "/retrain-server", "--listen", address, "--data_root", root(),
                     "--state_dir", root() + "/state", "--client_token_file", client_token,
                     "--worker_token_file", worker_token}),
      root() + "/server.log");
  std::vector<std::unique_ptr<Process>> workers;
  for (int host : {0, 1}) {
    workers.push_back(
        Process::Start(network.On(host, {BinDir() + "/retrain-worker", "--server", address,
                                         "--threads", "1", "--token_file", worker_token}),
                       root() + "/worker-on-host" + std::to_string(host) + ".log"));
  }
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(),
                {BinDir() + "/retrain", "--server", address, "--token_file", client_token});
    return RunCommand(network.On(1, args));
  };
  // Both workers have registered.
  ASSERT_TRUE(Eventually([&] {
    const std::string listed = cli({"workers"}).out;
    const size_t first = listed.find(" pid ");
    return first != std::string::npos && listed.find(" pid ", first + 1) != std::string::npos;
  })) << ReadAll(root() + "/server.log");
  const std::string data = root() + "/data";
  const CommandResult built =
      cli({"build-dataset", "--train_directory", data + "/train", "--validation_directory",
           data + "/validation", "--labels_file", data + "/labels.txt", "--output_directory",
           root() + "/two-hosts", "--train_shards", "4", "--validation_shards", "2", "--wait"});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err << ReadAll(root() + "/server.log");
  for (int host : {0, 1}) {
    const std::string log = ReadAll(root() + "/worker-on-host" + std::to_string(host) + ".log");
    EXPECT_THAT(log, ::testing::ContainsRegex(": write [a-z]+-[0-9]+-of-[0-9]+ done in"))
        << "host " << host << ":\n"
        << log;
  }

  Cluster cluster(root());
  cluster.StartServer();
  cluster.StartWorker(1);
  v1::Job job = Submit(cluster, BuildRequest(root(), root() + "/one-worker", 4, 2));
  job = cluster.WaitForEnd(job.id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  const DatasetView two_hosts = ReadDataset(root() + "/two-hosts");
  const DatasetView one_worker = ReadDataset(root() + "/one-worker");
  EXPECT_EQ(two_hosts.shard_bytes.size(), 6u);
  EXPECT_EQ(two_hosts.shard_bytes, one_worker.shard_bytes);
  EXPECT_EQ(two_hosts.index_bytes, one_worker.index_bytes);
  EXPECT_EQ(ReadAll(root() + "/two-hosts/labels.txt"), ReadAll(root() + "/one-worker/labels.txt"));
}

TEST_F(BuildDatasetTest, BadFilesAreSkippedWithReasonsAndTheBuildGoesOn) {
  Tree tree = WriteImages(root(), {"cat", "dog", "empty"}, 6, 2);
  fs::remove_all(root() + "/data/train/empty");
  fs::remove_all(root() + "/data/validation/empty");
  for (auto it = tree.begin(); it != tree.end();) {
    it = it->first.find("/empty/") != std::string::npos ? tree.erase(it) : std::next(it);
  }
  fs::create_directories(root() + "/data/train/empty");  // a label with no images
  const std::string cat = root() + "/data/train/cat/";
  const std::string good = MakeJpeg(80, 60, 90, 99);
  std::map<std::string, v1::SkipReason> bad = {
      {"train/cat/truncated.jpg", v1::SKIP_REASON_TRUNCATED},
      {"train/cat/text.jpg", v1::SKIP_REASON_NOT_AN_IMAGE},
      {"train/cat/zero.jpg", v1::SKIP_REASON_EMPTY},
      {"train/cat/dir.jpg", v1::SKIP_REASON_NOT_A_FILE},
      {"train/cat/loop.jpg", v1::SKIP_REASON_UNREADABLE},
      {"train/cat/dangling.jpg", v1::SKIP_REASON_UNREADABLE},
      {"train/cat/bomb.png", v1::SKIP_REASON_TOO_MANY_PIXELS},
      {"train/cat/truncated.png", v1::SKIP_REASON_TRUNCATED},
      {"train/cat/bad\xff.jpg", v1::SKIP_REASON_NOT_AN_IMAGE},
  };
  WriteFile(cat + "truncated.jpg", Truncate(MakeJpeg(200, 150, 90, 5), 0.5));
  WriteFile(cat + "text.jpg", "this is not an image\n");
  WriteFile(cat + "zero.jpg", "");
  fs::create_directories(cat + "dir.jpg");
  fs::create_symlink("loop.jpg", cat + "loop.jpg");
  fs::create_symlink("nowhere.jpg", cat + "dangling.jpg");
  WriteFile(cat + "bomb.png", MakeHugePngHeader(100000, 100000));
  WriteFile(cat + "truncated.png", Truncate(MakePng(200, 150, 6), 0.6));
  WriteFile(cat + "bad\xff.jpg", "garbage");
  // Good files in every other format, some with misleading names.
  Tree extra = {
      {"train/dog/png-named.jpg", MakePng(40, 30, 7)},
      {"train/dog/UPPER.PNG", MakePngRgba(40, 30, 8)},
      {"train/dog/gray.jpg", MakeGrayJpeg(40, 30, 90, 9)},
      {"train/dog/cmyk.jpg", MakeCmykJpeg(40, 30, 90, 10)},
      {"train/dog/progressive.jpg", MakeProgressiveJpeg(40, 30, 90, 11)},
      {"train/dog/rotated.jpg", MakeExifJpeg(40, 30, 6, 90, 12)},
      {"train/dog/anim.gif", MakeGif(40, 30, 13)},
      {"train/dog/pic.webp", MakeWebp(40, 30, 14)},
      {"train/dog/pic.bmp", MakeBmp(40, 30, 15)},
      {"train/dog/pic.tiff", MakeTiff(40, 30, 16)},
      {"train/dog/deep.png", MakePng16(40, 30, 17)},
      {"train/dog/caf\xff.jpg", MakeJpeg(40, 30, 90, 18)},
      {"validation/dog/copy-of-img0.jpg", tree.at("train/cat/img0.jpg")},
  };
  for (const auto& [rel, bytes] : extra) {
    WriteFile(root() + "/data/" + rel, bytes);
    tree[rel] = bytes;
  }
  // A file the worker may not read. Root reads everything, so under root
  // the worker runs as "nobody" and writes into a directory open to it.
  const std::string locked = "train/dog/locked.jpg";
  WriteFile(root() + "/data/" + locked, MakeJpeg(40, 30, 90, 19));
  chmod((root() + "/data/" + locked).c_str(), 0);
  bad[locked] = v1::SKIP_REASON_UNREADABLE;
  WriteFile(root() + "/data/labels.txt", "cat\ndog\n\nempty\n");
  const std::string out = root() + "/out";
  fs::create_directories(out + "/index");
  const int nobody = 65534;
  const int worker_uid = geteuid() == 0 ? nobody : -1;
  if (worker_uid >= 0) {
    fs::permissions(out, fs::perms::all);
    fs::permissions(out + "/index", fs::perms::all);
    fs::permissions(root(), fs::perms::all);
  }

  Cluster cluster(root());
  cluster.StartServer();
  cluster.StartWorker(2, worker_uid);
  v1::Job job = Submit(cluster, BuildRequest(root(), out, 2, 1));
  job = cluster.WaitForEnd(job.id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error() << cluster.ServerLog();

  const auto& result = job.dataset_build_result();
  std::map<std::string, v1::SkipReason> skipped;
  for (const auto& s : result.skipped()) skipped[s.split() + "/" + s.path()] = s.reason();
  std::map<std::string, v1::SkipReason> expected;
  for (const auto& [rel, reason] : bad) expected[EscapeNonUtf8(rel)] = reason;
  EXPECT_EQ(skipped, expected);

  DatasetView view = ReadDataset(out);
  ExpectValidRecords(view);
  ExpectEachImageOnce(view, tree);
  EXPECT_EQ(view.manifest["skipped"].size(), expected.size());
  EXPECT_EQ(view.manifest["splits"]["train"]["class_counts"][2]["name"], "empty");
  EXPECT_EQ(view.manifest["splits"]["train"]["class_counts"][2]["count"], 0);
  ASSERT_EQ(result.duplicates_size(), 1);
  EXPECT_THAT(result.duplicates(0).paths(),
              ::testing::UnorderedElementsAre("train/cat/img0.jpg",
                                              "validation/dog/copy-of-img0.jpg"));
  // The rotated JPEG (orientation 6) is stored upright: width and height swap.
  for (const auto& r : view.records) {
    if (r.bytes.at("image/filename") == "rotated.jpg") {
      EXPECT_EQ(r.ints.at("image/width"), 30);
      EXPECT_EQ(r.ints.at("image/height"), 40);
    }
  }
}

// However many files are left out, the manifest and the job's result list
// the first 100; skipped.jsonl and duplicates.jsonl beside the manifest
// list them all.
TEST_F(BuildDatasetTest, TheManifestStaysSmallAndTheJsonLinesListEverySkippedFile) {
  Tree tree = WriteImages(root(), {"cat", "dog"}, 4, 1);
  constexpr int kBad = 130;
  for (int i = 0; i < kBad; ++i) {
    WriteFile(root() + "/data/train/dog/bad-" + std::to_string(1000 + i) + ".jpg", "not an image");
  }
  WriteFile(root() + "/data/train/dog/copy.jpg", tree.at("train/cat/img0.jpg"));
  WriteFile(root() + "/data/validation/cat/copy.jpg", tree.at("train/cat/img0.jpg"));
  Cluster cluster(root());
  cluster.StartServer();
  cluster.StartWorker(1);
  const std::string out = root() + "/out";
  CommandResult r = cluster.Cli(
      {"build-dataset", "--train_directory", root() + "/data/train", "--validation_directory",
       root() + "/data/validation", "--output_directory", out, "--labels_file",
       root() + "/data/labels.txt", "--train_shards", "2", "--validation_shards", "1", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << cluster.ServerLog();
  EXPECT_THAT(r.out, HasSubstr("skipped files: 130"));
  EXPECT_THAT(r.out, HasSubstr("... 110 more in " + out + "/skipped.jsonl"));

  DatasetView view = ReadDataset(out);
  EXPECT_EQ(view.manifest["skipped"].size(), 100u);
  EXPECT_EQ(view.manifest["num_skipped"], kBad);
  EXPECT_EQ(view.manifest["skipped_file"], "skipped.jsonl");
  EXPECT_EQ(view.manifest["num_duplicate_groups"], 1);
  std::ifstream skipped(out + "/skipped.jsonl");
  std::vector<std::string> paths;
  for (std::string line; std::getline(skipped, line);) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["split"], "train");
    EXPECT_EQ(j["reason"], "not_an_image");
    paths.push_back(j["path"]);
  }
  ASSERT_EQ(paths.size(), static_cast<size_t>(kBad));
  EXPECT_EQ(paths.front(), "dog/bad-1000.jpg");
  EXPECT_EQ(paths.back(), "dog/bad-" + std::to_string(1000 + kBad - 1) + ".jpg");
  std::ifstream duplicates(out + "/duplicates.jsonl");
  std::string group;
  ASSERT_TRUE(std::getline(duplicates, group));
  // Found across the shards and the splits, in split and path order.
  EXPECT_EQ(nlohmann::json::parse(group),
            nlohmann::json::parse(
                R"(["train/cat/img0.jpg", "train/dog/copy.jpg", "validation/cat/copy.jpg"])"));
  EXPECT_FALSE(std::getline(duplicates, group));
}

TEST_F(BuildDatasetTest, SurvivesAWorkerKilledMidBuild) {
  Tree tree = WriteImages(root(), {"a", "b", "c"}, 80, 20, 400, 300);
  Cluster cluster(root());
  cluster.StartServer();
  Process& doomed = cluster.StartWorker(1);
  const std::string out = root() + "/out";
  v1::Job job = Submit(cluster, BuildRequest(root(), out, 12, 2));
  // Kill the worker while it holds a shard-writing task. The images were
  // converted while being validated, so writing a shard takes only
  // milliseconds: look often.
  cluster.WaitForJob(
      job.id(),
      [](const v1::Job& j) {
        return j.progress().phase() == "writing shards" && j.progress().tasks_running() > 0;
      },
      std::chrono::seconds(120), std::chrono::milliseconds(2));
  doomed.Signal(SIGKILL);
  doomed.Wait();
  cluster.StartWorker(2);
  job = cluster.WaitForEnd(job.id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
  bool requeued = false;
  for (const auto& e : job.history()) requeued |= e.reason().find("re-queued") != std::string::npos;
  EXPECT_TRUE(requeued) << "the killed worker's task was not handed to another worker";
  DatasetView view = ReadDataset(out);
  ExpectEachImageOnce(view, tree);
  EXPECT_THAT(HiddenOrForeignFiles(out), ::testing::IsEmpty());
}

TEST_F(BuildDatasetTest, SurvivesACoordinatorKilledMidBuild) {
  Tree tree = WriteImages(root(), {"a", "b", "c"}, 80, 20, 400, 300);
  Cluster cluster(root());
  cluster.StartServer();
  cluster.StartWorker(1);
  const std::string out = root() + "/out";
  v1::Job job = Submit(cluster, BuildRequest(root(), out, 12, 2));
  job = WaitUntilAShardIsWritten(cluster, job.id());
  // Shards finished before the crash must be kept, not written again.
  std::map<std::string, ino_t> before;
  for (const auto& e : fs::directory_iterator(out)) {
    struct stat st;
    const bool hidden = e.path().filename().string()[0] == '.';
    if (e.is_regular_file() && !hidden && stat(e.path().c_str(), &st) == 0) {
      before[e.path().filename().string()] = st.st_ino;
    }
  }
  const int port = cluster.port();
  cluster.KillServer(SIGKILL);
  cluster.StartServer(port);
  job = cluster.WaitForEnd(job.id());
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error() << cluster.ServerLog();
  ASSERT_FALSE(before.empty());
  for (const auto& [name, ino] : before) {
    struct stat st;
    ASSERT_EQ(stat((out + "/" + name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_ino, ino) << name << " was written again";
  }
  DatasetView view = ReadDataset(out);
  ExpectEachImageOnce(view, tree);
}

// A request changed from a good one, the code it gets and what its message
// must name.
struct Case {
  std::string name;
  std::function<void(v1::SubmitDatasetBuildRequest&)> change;
  grpc::StatusCode code;
  std::string mentions;
};

// What the coordinator can see in the request itself is refused at
// submission: nothing is created.
TEST_F(BuildDatasetTest, BadRequestsGetTheRightCodeAndNameTheField) {
  WriteImages(root(), {"cat", "dog"}, 1, 1);
  Cluster cluster(root());
  cluster.StartServer();
  const std::string out = root() + "/out";
  std::vector<Case> cases = {
      {"no directories",
       [](auto& r) {
         r.mutable_spec()->clear_train_directory();
         r.mutable_spec()->clear_validation_directory();
       },
       grpc::StatusCode::INVALID_ARGUMENT, "train_directory"},
      {"no output", [](auto& r) { r.mutable_spec()->clear_output_directory(); },
       grpc::StatusCode::INVALID_ARGUMENT, "output_directory"},
      {"zero shards", [](auto& r) { r.mutable_spec()->set_train_shards(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "train_shards"},
      {"negative shards", [](auto& r) { r.mutable_spec()->set_validation_shards(-3); },
       grpc::StatusCode::INVALID_ARGUMENT, "validation_shards"},
      {"output outside roots", [](auto& r) { r.mutable_spec()->set_output_directory("/tmp/x"); },
       grpc::StatusCode::PERMISSION_DENIED, "output_directory"},
      {"dot-dot escape",
       [&](auto& r) { r.mutable_spec()->set_train_directory(root() + "/data/../../.."); },
       grpc::StatusCode::PERMISSION_DENIED, "train_directory"},
      {"relative path", [](auto& r) { r.mutable_spec()->set_output_directory("out"); },
       grpc::StatusCode::INVALID_ARGUMENT, "output_directory"},
      {"output is the input",
       [&](auto& r) { r.mutable_spec()->set_output_directory(root() + "/data/train/"); },
       grpc::StatusCode::INVALID_ARGUMENT, "output_directory"},
      {"jpeg quality", [](auto& r) { r.mutable_spec()->set_jpeg_quality(0); },
       grpc::StatusCode::INVALID_ARGUMENT, "jpeg_quality"},
      {"shard format", [](auto& r) { r.mutable_spec()->set_format("parquet"); },
       grpc::StatusCode::INVALID_ARGUMENT, "format: must be one of tfrecord, webdataset"},
      {"verify mode", [](auto& r) { r.mutable_spec()->set_verify("quick"); },
       grpc::StatusCode::INVALID_ARGUMENT, "verify: must be one of full, structure, got 'quick'"},
  };
  for (const auto& c : cases) {
    auto req = BuildRequest(root(), out);
    c.change(req);
    grpc::Status s = SubmitStatus(cluster, req);
    EXPECT_EQ(s.error_code(), c.code) << c.name << ": " << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(c.mentions)) << c.name;
  }
  // Nothing was created by the refused requests.
  v1::ListJobsResponse list;
  grpc::ClientContext ctx;
  ASSERT_TRUE(cluster.jobs().ListJobs(&ctx, v1::ListJobsRequest(), &list).ok());
  EXPECT_EQ(list.jobs_size(), 0);
}

// A WebDataset build holds the records a TFRecord build of the same files
// holds, in the same order, in tar shards that Python's tarfile and Pillow
// read (tests/integration/webdataset_check.py: none of retrain's code) with
// the index DALI's tools would make, and that npm's tar reader reads alike
// (tests/integration/webdataset_read.js); and its bytes depend on the files
// and the seed alone.
TEST_F(BuildDatasetTest, WebDatasetShardsHoldTheSameRecordsAsTfRecordShards) {
  WriteImages(root(), {"cat", "dog", "fish"}, 12, 4);
  Cluster cluster(root());
  cluster.StartServer();
  cluster.StartWorker(2);
  const auto build = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"build-dataset",
                                     "--train_directory",
                                     root() + "/data/train",
                                     "--validation_directory",
                                     root() + "/data/validation",
                                     "--output_directory",
                                     out,
                                     "--train_shards",
                                     "3",
                                     "--validation_shards",
                                     "2",
                                     "--wait"};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = cluster.Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << cluster.ServerLog();
    return r;
  };
  const std::string tfrecord = root() + "/tfrecord", wds = root() + "/wds";
  build(tfrecord, {});
  EXPECT_THAT(build(wds, {"--format", "webdataset"}).out, HasSubstr("train-000002.tar"));
  CommandResult check =
      RunCommand({"/usr/bin/python3", SourceDir() + "/tests/integration/webdataset_check.py", wds});
  ASSERT_EQ(check.exit_code, 0) << check.err;
  const nlohmann::json read = nlohmann::json::parse(check.out);
  // node-tar (npm's tar reader) reads the same samples.
  CommandResult node = RunCommand({"/usr/bin/env", "NODE_PATH=/usr/share/nodejs", "node",
                                   SourceDir() + "/tests/integration/webdataset_read.js", wds});
  ASSERT_EQ(node.exit_code, 0) << node.err;
  EXPECT_EQ(nlohmann::json::parse(node.out), read);
  const DatasetView view = ReadDataset(tfrecord);
  ASSERT_EQ(read["records"], view.records.size());
  ASSERT_EQ(view.records.size(), 48u);
  for (size_t i = 0; i < view.records.size(); ++i) {
    const RecordView& want = view.records[i];
    const nlohmann::json& got = read["samples"][i];
    Sha256 jpeg;
    jpeg.Update(want.bytes.at("image/encoded"));
    EXPECT_EQ(got["jpeg_sha256"], jpeg.HexDigest()) << i;
    EXPECT_EQ(got["label"], want.ints.at("image/class/label")) << i;
    EXPECT_EQ(got["label_name"], want.bytes.at("image/class/text")) << i;
    EXPECT_EQ(got["filename"], want.bytes.at("image/filename")) << i;
    EXPECT_EQ(got["height"], want.ints.at("image/height")) << i;
    EXPECT_EQ(want.shard.substr(0, want.shard.find('-')),
              got["shard"].get<std::string>().substr(0, got["shard"].get<std::string>().find('-')));
  }
  const nlohmann::json manifest = nlohmann::json::parse(*ReadFile(wds + "/dataset.json"));
  EXPECT_EQ(manifest["format"], "retrain-dataset/2");
  EXPECT_EQ(manifest["splits"]["validation"]["shards"][1]["index"], "index/validation-000001.idx");

  // Again with one thread: the same bytes.
  const std::string again = root() + "/again";
  build(again, {"--format", "webdataset", "--num_threads", "1"});
  for (const char* file : {"train-000000.tar", "index/train-000002.idx", "validation-000001.tar"}) {
    EXPECT_EQ(*ReadFile(again + "/" + file), *ReadFile(wds + "/" + file)) << file;
  }
}

// --verify structure: a JPEG cut short is refused as with the full check;
// one whose entropy-coded data is damaged but whose markers hold is taken
// (the full check refuses it); the manifest records the mode.
TEST_F(BuildDatasetTest, VerifyStructureStillRefusesCutJpegsAndTheManifestSaysSo) {
  WriteImages(root(), {"cat", "dog"}, 3, 0);
  const std::string jpeg = test_images::MakeJpeg(500, 375);
  const size_t middle = (test_images::JpegScanDataOffset(jpeg) + jpeg.size()) / 2;
  std::string smeared = jpeg;  // as ImageProbeTest damages it
  for (size_t i = middle; i < middle + 200; ++i) smeared[i] = '\xFE';
  test_images::WriteFile(root() + "/data/train/cat/cut.jpg", test_images::Truncate(jpeg, 0.6));
  test_images::WriteFile(root() + "/data/train/dog/smeared.jpg", smeared);
  Cluster cluster(root());
  cluster.StartServer();
  cluster.StartWorker(1);
  std::map<std::string, std::map<std::string, std::string>> skipped;  // mode -> path -> reason
  std::map<std::string, int64_t> records;
  for (const std::string mode : {"full", "structure"}) {
    const std::string out = root() + "/out-" + mode;
    CommandResult r =
        cluster.Cli({"build-dataset", "--train_directory", root() + "/data/train",
                     "--output_directory", out, "--train_shards", "1", "--verify", mode, "--wait"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    const nlohmann::json manifest = nlohmann::json::parse(*ReadFile(out + "/dataset.json"));
    EXPECT_EQ(manifest["options"]["verify"], mode);
    for (const auto& s : manifest["skipped"]) skipped[mode][s["path"]] = s["reason"];
    records[mode] = manifest["splits"]["train"]["num_records"];
  }
  EXPECT_EQ(skipped["full"], (std::map<std::string, std::string>{{"cat/cut.jpg", "truncated"},
                                                                 {"dog/smeared.jpg", "corrupt"}}));
  EXPECT_EQ(skipped["structure"],
            (std::map<std::string, std::string>{{"cat/cut.jpg", "truncated"}}));
  EXPECT_EQ(records["structure"], records["full"] + 1);
}

// What needs the file system a worker checks first (the coordinator reads
// no data): the job fails with the code the submission would have had,
// naming the field, and writes nothing.
TEST_F(BuildDatasetTest, AWorkersCheckRefusesWhatTheFileSystemShows) {
  WriteImages(root(), {"cat", "dog"}, 1, 1);
  Cluster cluster(root());
  cluster.StartServer();
  cluster.StartWorker(1);
  const std::string out = root() + "/out";
  fs::create_directory_symlink("/usr", root() + "/escape");
  WriteFile(root() + "/data/bad-labels.txt", "cat\ndog\ncat\nsub/dir\n");
  WriteFile(root() + "/data/missing-labels.txt", "cat\nbird\n");
  std::vector<Case> cases = {
      {"missing train dir",
       [&](auto& r) { r.mutable_spec()->set_train_directory(root() + "/nope"); },
       grpc::StatusCode::NOT_FOUND, "train_directory"},
      {"symlink escape",
       [&](auto& r) { r.mutable_spec()->set_validation_directory(root() + "/escape/share"); },
       grpc::StatusCode::PERMISSION_DENIED, "validation_directory"},
      {"malformed labels",
       [&](auto& r) { r.mutable_spec()->set_labels_file(root() + "/data/bad-labels.txt"); },
       grpc::StatusCode::INVALID_ARGUMENT, "line 3 'cat' repeats line 1; line 4 'sub/dir'"},
      {"label without directory",
       [&](auto& r) { r.mutable_spec()->set_labels_file(root() + "/data/missing-labels.txt"); },
       grpc::StatusCode::INVALID_ARGUMENT, "line 2 'bird' has no directory"},
      {"missing labels file",
       [&](auto& r) { r.mutable_spec()->set_labels_file(root() + "/data/none.txt"); },
       grpc::StatusCode::NOT_FOUND, "labels_file"},
  };
  // Shards of another build in the output directory would be globbed in.
  fs::create_directories(root() + "/used");
  WriteFile(root() + "/used/train-00000-of-00009", "old");
  cases.push_back({"foreign shards",
                   [&](auto& r) { r.mutable_spec()->set_output_directory(root() + "/used"); },
                   grpc::StatusCode::FAILED_PRECONDITION, "train-00000-of-00009"});
  for (const auto& c : cases) {
    auto req = BuildRequest(root(), out);
    c.change(req);
    const v1::Job submitted = Submit(cluster, req);
    const v1::Job job = cluster.WaitForEnd(submitted.id());
    EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED) << c.name;
    EXPECT_TRUE(job.request_checked()) << c.name;
    EXPECT_EQ(job.error_code(), static_cast<int>(c.code)) << c.name << ": " << job.error();
    EXPECT_THAT(job.error(), HasSubstr(c.mentions)) << c.name;
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(std::distance(fs::directory_iterator(root() + "/used"), fs::directory_iterator()), 1);
  // The CLI reports the refusal as the submission would have: one line,
  // the code, exit 1.
  CommandResult cli = cluster.Cli(
      {"build-dataset", "--train_directory", root() + "/nope", "--output_directory", out});
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_THAT(cli.err,
              ::testing::MatchesRegex("retrain: error: train_directory: [^\n]*does not exist[^\n]*"
                                      "\\[NOT_FOUND\\]\n"));
}

TEST_F(BuildDatasetTest, RetriedSubmitWithTheSameRequestIdIsOneJob) {
  WriteImages(root(), {"cat"}, 2, 1);
  Cluster cluster(root());
  cluster.StartServer();
  auto req = BuildRequest(root(), root() + "/out");
  req.set_request_id("retry-me");
  v1::Job first = Submit(cluster, req);
  v1::Job second = Submit(cluster, req);
  EXPECT_FALSE(first.id().empty());
  EXPECT_EQ(first.id(), second.id());
  req.mutable_spec()->set_train_shards(5);
  EXPECT_EQ(SubmitStatus(cluster, req).error_code(), grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(BuildDatasetTest, CliErrorsAreOneReadableLine) {
  WriteImages(root(), {"cat"}, 1, 1);
  Cluster cluster(root());
  cluster.StartServer();
  CommandResult bad = cluster.Cli({"build-dataset", "--train_directory", root() + "/data/train",
                                   "--output_directory", root() + "/out", "--train_shards", "0"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, ::testing::MatchesRegex("retrain: error: [^\n]*train_shards[^\n]*\n"));
  CommandResult usage = cluster.Cli({"build-dataset", "--train_directory", "x"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.err, ::testing::MatchesRegex("retrain: [^\n]*output_directory[^\n]*\n"));
  const std::string address = cluster.address();
  cluster.KillServer(SIGKILL);
  CommandResult down = RunCommand({BinDir() + "/retrain", "--server", address, "--timeout_s", "2",
                                   "list"});
  EXPECT_EQ(down.exit_code, 3);
  EXPECT_THAT(down.err, ::testing::MatchesRegex("retrain: cannot reach the server[^\n]*\n"));
}

}  // namespace
}  // namespace retrain::testing
