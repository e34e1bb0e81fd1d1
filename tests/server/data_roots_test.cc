#include "server/data_roots.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "common/files.h"
#include "tests/support/cluster.h"

namespace retrain::server {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(DataRootsTest, PathsAreConfinedByTheirSpelling) {
  auto roots = DataRoots::Create({"/data/./images/", "/srv/b"});
  ASSERT_TRUE(roots.ok()) << roots.status();
  EXPECT_EQ(roots->roots()[0], "/data/images");  // need not exist here
  EXPECT_EQ(*roots->Resolve("f", "/data/images/in/../in/./"), "/data/images/in");
  EXPECT_TRUE(roots->Resolve("f", "/srv/b/not/yet/made").ok());
  EXPECT_EQ(roots->Resolve("f", "/data/images/../../etc").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(roots->Resolve("f", "/data/imagesx").status().code(),
            absl::StatusCode::kPermissionDenied);  // a sibling sharing the prefix
  EXPECT_EQ(roots->Resolve("f", "relative").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(roots->Resolve("f", std::string("/srv/b/a\0b", 10)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(roots->Resolve("output_directory", "/").status().message()),
              HasSubstr("output_directory"));
}

TEST(DataRootsTest, OnThisHostSymlinksOutOfTheRootsAreRefused) {
  retrain::testing::TempDir dir;
  const std::string root = fs::canonical(dir.path()).string();
  fs::create_directories(root + "/in");
  fs::create_directory_symlink("/usr", root + "/link");
  auto roots = DataRoots::Create({root});
  ASSERT_TRUE(roots.ok());
  EXPECT_TRUE(roots->Resolve("f", root + "/link/lib").ok());  // the spelling is inside
  // The workers' check, on their file system.
  EXPECT_EQ(CheckUnderRootsOnThisHost("f", root + "/link/lib", roots->roots()).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(CheckUnderRootsOnThisHost("f", root + "/in/x", roots->roots()).ok());
}

}  // namespace
}  // namespace retrain::server
