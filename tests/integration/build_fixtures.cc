#include "tests/integration/build_fixtures.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "common/files.h"
#include "tests/support/test_images.h"

namespace retrain::testing {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;
using namespace retrain::test_images;  // NOLINT: image factories

Tree WriteImages(const std::string& root, const std::vector<std::string>& labels, int train_each,
                 int validation_each, int width, int height) {
  Tree tree;
  uint64_t seed = 1;
  for (const auto& [split, count] : {std::pair<std::string, int>{"train", train_each},
                                     {"validation", validation_each}}) {
    for (const auto& label : labels) {
      fs::create_directories(root + "/data/" + split + "/" + label);
      for (int i = 0; i < count; ++i) {
        const bool png = i % 5 == 4;
        const std::string rel = split + "/" + label + "/img" + std::to_string(i) +
                                (png ? ".png" : ".jpg");
        std::string bytes = png ? MakePng(width, height, seed) : MakeJpeg(width, height, 90, seed);
        ++seed;
        WriteFile(root + "/data/" + rel, bytes);
        tree[rel] = std::move(bytes);
      }
    }
  }
  std::string labels_text;
  for (const auto& l : labels) labels_text += l + "\n";
  WriteFile(root + "/data/labels.txt", labels_text);
  return tree;
}

v1::SubmitDatasetBuildRequest BuildRequest(const std::string& root, const std::string& out,
                                           int train_shards, int validation_shards) {
  v1::SubmitDatasetBuildRequest req;
  auto* s = req.mutable_spec();
  s->set_train_directory(root + "/data/train");
  s->set_validation_directory(root + "/data/validation");
  s->set_output_directory(out);
  s->set_labels_file(root + "/data/labels.txt");
  s->set_train_shards(train_shards);
  s->set_validation_shards(validation_shards);
  return req;
}

v1::Job Submit(Cluster& cluster, const v1::SubmitDatasetBuildRequest& req) {
  grpc::ClientContext ctx;
  v1::Job job;
  grpc::Status s = cluster.jobs().SubmitDatasetBuild(&ctx, req, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}

v1::Job WaitUntilAShardIsWritten(Cluster& cluster, const std::string& job_id) {
  return cluster.WaitForJob(
      job_id,
      [](const v1::Job& j) {
        return j.progress().phase() == "writing shards" && j.progress().tasks_done() >= 1;
      },
      std::chrono::seconds(120), std::chrono::milliseconds(2));
}

void ExpectEachImageOnce(const DatasetView& view, const Tree& tree,
                         const std::set<std::string>& left_out) {
  std::map<std::string, int> seen;  // "split/label/filename"
  for (const auto& r : view.records) {
    const std::string split = r.shard.rfind("train-", 0) == 0 ? "train" : "validation";
    seen[split + "/" + r.bytes.at("image/class/text") + "/" + r.bytes.at("image/filename")]++;
  }
  size_t expected = 0;
  for (const auto& [rel, bytes] : tree) {
    if (left_out.count(rel)) continue;
    ++expected;
    EXPECT_EQ(seen[rel], 1) << rel;
  }
  EXPECT_EQ(view.records.size(), expected);
}

std::vector<std::string> HiddenOrForeignFiles(const std::string& out) {
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    if (name[0] == '.') found.push_back(e.path().string());
  }
  return found;
}

}  // namespace retrain::testing
