#include "worker/build/labels.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/worker/temp_tree.h"
#include "worker/build/check_task.h"

namespace retrain::worker {
namespace {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Names(const std::vector<LabelLine>& labels) {
  std::vector<std::string> out;
  for (const auto& l : labels) out.push_back(l.name);
  return out;
}

TEST(ParseLabelsTest, LinesInOrderBlankLinesIgnoredSpacesStripped) {
  auto labels = ParseLabels("daisy\n  dandelion \n\n\troses\r\nsunflowers\ntulips", "l.txt");
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_THAT(Names(*labels), ElementsAre("daisy", "dandelion", "roses", "sunflowers", "tulips"));
  EXPECT_EQ((*labels)[2].line, 4);
}

TEST(ParseLabelsTest, EveryBadLineIsNamed) {
  auto labels = ParseLabels("cat\ndog\ncat\na/b\n..\nok\n", "/d/labels.txt");
  ASSERT_FALSE(labels.ok());
  EXPECT_EQ(labels.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(labels.status().message());
  EXPECT_THAT(msg, HasSubstr("/d/labels.txt"));
  EXPECT_THAT(msg, HasSubstr("line 3 'cat' repeats line 1"));
  EXPECT_THAT(msg, HasSubstr("line 4 'a/b' contains a path separator"));
  EXPECT_THAT(msg, HasSubstr("line 5 '..'"));
}

TEST(ParseLabelsTest, EmptyFileIsAnError) {
  EXPECT_EQ(ParseLabels("\n \n", "l").status().code(), absl::StatusCode::kInvalidArgument);
}

class ScanTest : public TempTreeTest {};

TEST_F(ScanTest, ListsLabelDirectoriesSorted) {
  fs::create_directories(root_ + "/train/zebra");
  fs::create_directories(root_ + "/train/ant");
  fs::create_directories(root_ + "/train/.hidden");
  Touch("train/file-at-top.jpg");
  auto labels = ListLabelDirectories(root_ + "/train");
  ASSERT_TRUE(labels.ok());
  EXPECT_THAT(*labels, ElementsAre("ant", "zebra"));
}

TEST_F(ScanTest, TheCheckTaskConfinesPathsWithSymlinksFollowed) {
  fs::create_directories(root_ + "/data/train/cat");
  fs::create_directory_symlink("/usr", root_ + "/escape");
  fs::create_directory_symlink(root_ + "/data/train", root_ + "/alias");
  v1::CheckBuildTask task;
  task.add_data_roots(root_);
  task.mutable_spec()->set_train_directory(root_ + "/data/train");
  task.mutable_spec()->set_output_directory(root_ + "/out");
  auto ok = RunCheckBuildTask(task);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_FALSE(ok->has_refusal()) << ok->refusal().message();
  EXPECT_THAT(ok->labels(), ElementsAre("cat"));

  v1::CheckBuildTask escape = task;
  escape.mutable_spec()->set_validation_directory(root_ + "/escape/share");
  auto refused = RunCheckBuildTask(escape);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->refusal().code(), static_cast<int>(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(refused->refusal().message(), HasSubstr("validation_directory"));
  EXPECT_THAT(refused->refusal().message(), HasSubstr("/usr/share"));

  v1::CheckBuildTask alias = task;
  alias.mutable_spec()->set_output_directory(root_ + "/alias");
  refused = RunCheckBuildTask(alias);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->refusal().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(refused->refusal().message(), HasSubstr("by another name"));
}

TEST_F(ScanTest, TheCheckTaskReadsTheLabelsFileAndNamesWhatIsMissing) {
  fs::create_directories(root_ + "/train/cat");
  fs::create_directories(root_ + "/train/dog");
  std::ofstream(root_ + "/labels.txt") << "dog\ncat\nbird\n";
  v1::CheckBuildTask task;
  task.add_data_roots(root_);
  task.mutable_spec()->set_train_directory(root_ + "/train");
  task.mutable_spec()->set_output_directory(root_ + "/out");
  task.mutable_spec()->set_labels_file(root_ + "/labels.txt");
  auto refused = RunCheckBuildTask(task);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->refusal().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(refused->refusal().message(), HasSubstr("line 3 'bird' has no directory"));
  std::ofstream(root_ + "/labels.txt") << "dog\ncat\n";
  auto ok = RunCheckBuildTask(task);
  ASSERT_TRUE(ok.ok());
  EXPECT_THAT(ok->labels(), ElementsAre("dog", "cat"));  // the file's order
  task.mutable_spec()->set_train_directory(root_ + "/nope");
  refused = RunCheckBuildTask(task);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->refusal().code(), static_cast<int>(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace retrain::worker
