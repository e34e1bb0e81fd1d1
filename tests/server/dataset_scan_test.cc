#include "server/dataset_scan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "server/data_roots.h"
#include "tests/support/cluster.h"

namespace retrain::server {
namespace {

namespace fs = std::filesystem;
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

class ScanTest : public ::testing::Test {
 protected:
  void Touch(const std::string& rel) {
    fs::create_directories(fs::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel) << "x";
  }
  retrain::testing::TempDir dir_;
  std::string root_ = fs::canonical(dir_.path()).string();
};

TEST_F(ScanTest, ListsLabelDirectoriesSorted) {
  fs::create_directories(root_ + "/train/zebra");
  fs::create_directories(root_ + "/train/ant");
  fs::create_directories(root_ + "/train/.hidden");
  Touch("train/file-at-top.jpg");
  auto labels = ListLabelDirectories(root_ + "/train");
  ASSERT_TRUE(labels.ok());
  EXPECT_THAT(*labels, ElementsAre("ant", "zebra"));
}

TEST_F(ScanTest, DataRootsRefuseEscapes) {
  fs::create_directories(root_ + "/in");
  fs::create_directory_symlink("/usr", root_ + "/link");
  auto roots = DataRoots::Create({root_});
  ASSERT_TRUE(roots.ok());
  EXPECT_TRUE(roots->Resolve("f", root_ + "/in").ok());
  EXPECT_TRUE(roots->Resolve("f", root_ + "/not/yet/made").ok());
  EXPECT_EQ(*roots->Resolve("f", root_ + "/in/../in/./"), root_ + "/in");
  EXPECT_EQ(roots->Resolve("f", root_ + "/../x").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(roots->Resolve("f", root_ + "/link/lib").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(roots->Resolve("f", root_ + "x").status().code(),
            absl::StatusCode::kPermissionDenied);  // a sibling sharing the prefix
  EXPECT_EQ(roots->Resolve("f", "relative").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(roots->Resolve("output_directory", "/").status().message()),
              HasSubstr("output_directory"));
}

}  // namespace
}  // namespace retrain::server
