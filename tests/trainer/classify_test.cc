// retrain-trainer classify on a checkpoint of a tiny training run: results
// in input order, named classes, bad files reported and skipped, the same
// answers whatever the batch size, and clear errors for bad options.
#include "trainer/classify.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/trainer/input/test_dataset.h"
#include "tests/trainer/tiny_run.h"
#include "trainer/checkpoint.h"
#include "trainer/spec/checkpoint_summary.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::MakeTempDir;
using testing::WriteFile;

// A small model trained for a few steps on 3 classes.
const testing::TinyRun& TrainedRun() {
  static const testing::TinyRun run = testing::TrainTinyRun("classify", 3);
  return run;
}

std::string Jpeg(int width, int height, uint64_t seed) {
  return testing::EncodeJpeg(testing::MakePhotoImage(width, height, seed));
}

std::vector<nlohmann::json> Lines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::vector<nlohmann::json> ClassifyJson(ClassifyOptions o, ClassifyResult* result = nullptr) {
  o.output = "json";
  std::ostringstream out;
  const ClassifyResult r = Classify(o, out);
  if (result) *result = r;
  return Lines(out.str());
}

TEST(ClassifyTest, ClassifiesEveryJpegInInputOrderAndReportsTheOthers) {
  const testing::TinyRun& run = TrainedRun();
  const std::string dir = MakeTempDir("classify-images");
  fs::create_directories(dir + "/tree/sub");
  fs::create_directories(dir + "/tree/.cache");
  WriteFile(dir + "/first.jpg", Jpeg(50, 40, 1));
  WriteFile(dir + "/tree/a.jpg", Jpeg(64, 48, 2));
  const std::string whole = Jpeg(80, 60, 3);
  WriteFile(dir + "/tree/cut.jpg", whole.substr(0, whole.size() / 3));
  WriteFile(dir + "/tree/sub/b.jpg", Jpeg(33, 90, 4));
  WriteFile(dir + "/tree/sub/notes.png", "not an image");
  WriteFile(dir + "/tree/.hidden.jpg", Jpeg(40, 40, 5));
  WriteFile(dir + "/tree/.cache/c.jpg", Jpeg(40, 40, 6));

  ClassifyOptions o;
  o.checkpoint_dir = run.train_dir;
  o.inputs = {dir + "/first.jpg", dir + "/tree"};
  o.top_k = 2;
  ClassifyResult result;
  const auto lines = ClassifyJson(o, &result);
  EXPECT_EQ(result.classified, 3);
  EXPECT_EQ(result.skipped, 2);
  ASSERT_EQ(lines.size(), 5u);
  const std::vector<std::string> order = {"/first.jpg", "/tree/a.jpg", "/tree/cut.jpg",
                                          "/tree/sub/b.jpg", "/tree/sub/notes.png"};
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(lines[i]["image"], dir + order[i]);
  EXPECT_THAT(lines[2].value("error", ""), HasSubstr(dir + "/tree/cut.jpg"));
  EXPECT_THAT(lines[2].value("error", ""), HasSubstr("damaged or cut short"));
  EXPECT_THAT(lines[4].value("error", ""), HasSubstr("not a JPEG"));
  for (size_t i : {0, 1, 3}) {
    const auto& p = lines[i]["predictions"];
    ASSERT_EQ(p.size(), 2u) << lines[i];
    EXPECT_GE(p[0]["probability"].get<double>(), p[1]["probability"].get<double>());
    EXPECT_LE(p[0]["probability"].get<double>() + p[1]["probability"].get<double>(), 1.0 + 1e-6);
    EXPECT_NE(p[0]["label"], p[1]["label"]);
    for (const auto& c : p) {
      const int64_t label = c["label"];
      ASSERT_GE(label, 0);
      ASSERT_LE(label, 3);
      EXPECT_EQ(c["name"], label == 0 ? "background" : "class" + std::to_string(label)) << c;
    }
  }

  // More classes asked for than there are: all four, summing to one.
  o.top_k = 10;
  o.inputs = {dir + "/first.jpg"};
  const auto all = ClassifyJson(o);
  ASSERT_EQ(all.size(), 1u);
  double sum = 0;
  for (const auto& c : all[0]["predictions"]) sum += c["probability"].get<double>();
  EXPECT_EQ(all[0]["predictions"].size(), 4u);
  EXPECT_NEAR(sum, 1.0, 1e-5);

  // Text output: one line per classified image, names and percentages.
  o.output = "text";
  o.top_k = 1;
  std::ostringstream text;
  Classify(o, text);
  EXPECT_THAT(text.str(), ::testing::MatchesRegex(dir + "/first\\.jpg: [a-z0-9]+ [0-9.]+%\n"));
}

TEST(ClassifyTest, TheBatchSizeDoesNotChangeTheAnswers) {
  const testing::TinyRun& run = TrainedRun();
  const std::string dir = MakeTempDir("classify-batches");
  for (int i = 0; i < 7; ++i) WriteFile(dir + "/" + std::to_string(i) + ".jpg", Jpeg(48, 40, 10 + i));
  ClassifyOptions o;
  o.checkpoint = *CheckpointManager(run.train_dir, 5).Latest();
  o.inputs = {dir};
  o.top_k = 4;
  o.batch_size = 1;
  const auto one = ClassifyJson(o);
  o.batch_size = 3;
  const auto three = ClassifyJson(o);
  ASSERT_EQ(one.size(), 7u);
  ASSERT_EQ(three.size(), 7u);
  // Every class's probability per image (top_k covers all four), compared
  // by label: on a GPU, convolutions in TF32 may reorder near ties.
  auto by_label = [](const nlohmann::json& line) {
    std::map<int64_t, double> p;
    for (const auto& c : line["predictions"]) p[c["label"]] = c["probability"];
    return p;
  };
  bool all_alike = true;
  for (size_t i = 0; i < one.size(); ++i) {
    const auto a = by_label(one[i]), b = by_label(three[i]);
    ASSERT_EQ(a.size(), 4u);
    ASSERT_EQ(b.size(), 4u);
    for (const auto& [label, p] : a) {
      EXPECT_NEAR(p, b.at(label), 2e-3) << "image " << i << ", class " << label;
      if (std::abs(p - by_label(one[0]).at(label)) > 1e-3) all_alike = false;
    }
  }
  EXPECT_FALSE(all_alike) << "seven different images got identical answers";
}

TEST(ClassifyTest, ClassNamesComeFromTheCheckpointOrTheDataset) {
  const testing::TinyRun& run = TrainedRun();
  const std::string checkpoint = *CheckpointManager(run.train_dir, 5).Latest();
  const auto summary = ReadCheckpointSummary(checkpoint);
  ASSERT_TRUE(summary.has_value());
  ASSERT_EQ(summary->labels.size(), 3u);
  EXPECT_EQ(summary->labels[0].id, 1);
  EXPECT_EQ(summary->labels[0].name, "class1");

  // A copy whose summary records no names, as older ones: ids, or the
  // dataset's names with --data_dir.
  const std::string old_dir = MakeTempDir("classify-old");
  const std::string old = old_dir + "/" + fs::path(checkpoint).filename().string();
  fs::copy_file(checkpoint, old);
  auto j = nlohmann::json::parse(testing::ReadFile(CheckpointSummaryPath(checkpoint)));
  j.erase("labels");
  WriteFile(CheckpointSummaryPath(old), j.dump());
  const std::string image = old_dir + "/x.jpg";
  WriteFile(image, Jpeg(40, 40, 20));
  ClassifyOptions o;
  o.checkpoint = old;
  o.inputs = {image};
  o.top_k = 4;
  auto names_of = [](const std::vector<nlohmann::json>& lines) {
    std::set<std::string> names;
    for (const auto& c : lines.at(0)["predictions"]) names.insert(c["name"]);
    return names;
  };
  EXPECT_EQ(names_of(ClassifyJson(o)),
            (std::set<std::string>{"background", "class 1", "class 2", "class 3"}));
  o.data_dir = run.data;
  EXPECT_EQ(names_of(ClassifyJson(o)),
            (std::set<std::string>{"background", "class1", "class2", "class3"}));
}

TEST(ClassifyTest, BadOptionsAreConfigurationErrorsThatSayWhatToDo) {
  const testing::TinyRun& run = TrainedRun();
  const std::string dir = MakeTempDir("classify-bad");
  WriteFile(dir + "/x.jpg", Jpeg(40, 40, 30));
  auto error_of = [](const ClassifyOptions& o) -> std::string {
    std::ostringstream out;
    try {
      Classify(o, out);
    } catch (const TrainerError& e) {
      EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig) << e.what();
      EXPECT_EQ(out.str(), "") << "nothing is classified before the options are checked";
      return e.what();
    }
    return "no error";
  };
  ClassifyOptions o;
  o.checkpoint_dir = run.train_dir;
  o.inputs = {dir + "/x.jpg", dir + "/missing.jpg"};
  EXPECT_THAT(error_of(o), HasSubstr(dir + "/missing.jpg: no such file or directory"));
  o.inputs = {dir + "/x.jpg"};
  o.checkpoint_dir = dir;
  EXPECT_THAT(error_of(o), HasSubstr("--checkpoint_dir " + dir + " holds no checkpoint"));
  o.checkpoint = dir + "/x.jpg";
  EXPECT_THAT(error_of(o), HasSubstr("--checkpoint_dir"));
  o.checkpoint_dir.clear();
  o.checkpoint = run.train_dir;
  o.top_k = 0;
  EXPECT_THAT(error_of(o), HasSubstr("--top_k"));
  o.top_k = 5;
  o.output = "yaml";
  EXPECT_THAT(error_of(o), HasSubstr("--output must be text or json"));
  o.output = "text";
  o.device = "tpu";
  EXPECT_THAT(error_of(o), HasSubstr("--device must be auto, cpu or cuda"));
  if (!torch::cuda::is_available()) {
    o.device = "cuda";
    EXPECT_THAT(error_of(o), HasSubstr("--device cuda: LibTorch sees no CUDA device"));
  }
  o.device = "cpu";
  o.checkpoint = dir + "/weights.safetensors";
  WriteFile(o.checkpoint, "weights");
  EXPECT_THAT(error_of(o), HasSubstr("holds weights only"));
  EXPECT_THAT(error_of(o), HasSubstr("--pretrained_model_checkpoint_path"));
}

}  // namespace
}  // namespace retrain::trainer
