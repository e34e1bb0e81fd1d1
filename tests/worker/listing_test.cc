#include "worker/build/listing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "tests/support/process.h"
#include "tests/worker/temp_tree.h"
#include "worker/build/workspace.h"

namespace retrain::worker {
namespace {

namespace fs = std::filesystem;
namespace v1 = retrain::v1;
using ::testing::ElementsAre;

class ListingTest : public TempTreeTest {};

TEST_F(ListingTest, FilesInNameOrderAndOddEntriesRefused) {
  Touch("train/dog/b.jpg");
  Touch("train/dog/a.jpg");
  Touch("train/cat/z.jpg");
  fs::create_directories(root_ + "/train/cat/folder.jpg");
  fs::create_symlink("self", root_ + "/train/cat/self");
  fs::create_symlink("/etc/hostname", root_ + "/train/cat/outside.jpg");
  fs::create_symlink("z.jpg", root_ + "/train/cat/link.jpg");
  EXPECT_THAT(ListLabelDirectory("train", root_ + "/train", "dog", {root_}).names,
              ElementsAre("a.jpg", "b.jpg"));
  const LabelListing cat = ListLabelDirectory("train", root_ + "/train", "cat", {root_});
  EXPECT_THAT(cat.names, ElementsAre("link.jpg", "z.jpg"));
  std::map<std::string, v1::SkipReason> refused;
  for (const auto& s : cat.refused) refused[s.path()] = s.reason();
  EXPECT_EQ(refused.size(), 3u);
  EXPECT_EQ(refused["cat/folder.jpg"], v1::SKIP_REASON_NOT_A_FILE);
  EXPECT_EQ(refused["cat/self"], v1::SKIP_REASON_UNREADABLE);
  EXPECT_EQ(refused["cat/outside.jpg"], v1::SKIP_REASON_UNREADABLE);
  const LabelListing missing = ListLabelDirectory("train", root_ + "/train", "missing", {root_});
  EXPECT_TRUE(missing.names.empty());
  EXPECT_TRUE(missing.refused.empty());
}

TEST_F(ListingTest, AListTaskWritesItsChunksAndRefusals) {
  for (int i = 0; i < 5; ++i) Touch("train/dog/" + std::to_string(i) + ".jpg");
  fs::create_directories(root_ + "/train/dog/sub");
  v1::ListTask task;
  task.set_directory(root_ + "/train");
  task.set_split("train");
  task.add_labels("dog");
  task.add_labels("none");  // no directory: no files
  task.set_first_label_index(3);
  task.add_data_roots(root_);
  task.set_workspace(root_ + "/ws");
  task.set_files_per_chunk(2);
  auto result = RunListTask(task);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->listed_size(), 2);
  EXPECT_EQ(result->listed(0).label_index(), 3);
  EXPECT_EQ(result->listed(0).files(), 5);
  EXPECT_EQ(result->listed(0).refused(), 1);
  EXPECT_EQ(result->listed(1).label_index(), 4);
  EXPECT_EQ(result->listed(1).files(), 0);
  std::vector<std::string> names;
  for (int chunk = 0; chunk < ChunkCount(5, 2); ++chunk) {
    v1::FileNames chunk_names;
    ASSERT_TRUE(ReadWorkspaceFile(ListChunkFile(root_ + "/ws", "train", 3, chunk), &chunk_names).ok());
    EXPECT_LE(chunk_names.names_size(), 2);
    names.insert(names.end(), chunk_names.names().begin(), chunk_names.names().end());
  }
  EXPECT_THAT(names, ElementsAre("0.jpg", "1.jpg", "2.jpg", "3.jpg", "4.jpg"));
  v1::SkippedFiles refused;
  ASSERT_TRUE(ReadWorkspaceFile(RefusedFile(root_ + "/ws", "train", 3), &refused).ok());
  ASSERT_EQ(refused.files_size(), 1);
  EXPECT_EQ(refused.files(0).path(), "dog/sub");
  // A damaged workspace file is named.
  std::ofstream(ListChunkFile(root_ + "/ws", "train", 3, 0)) << "\xff\xff\xff";
  v1::FileNames damaged;
  const absl::Status status = ReadWorkspaceFile(ListChunkFile(root_ + "/ws", "train", 3, 0), &damaged);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("train-3-0.names"));
}

}  // namespace
}  // namespace retrain::worker
