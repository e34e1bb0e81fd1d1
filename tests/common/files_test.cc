#include "common/files.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/hashing.h"

namespace retrain {
namespace {

namespace fs = std::filesystem;

TEST(FilesTest, AtomicWriterLeavesNothingUntilCommit) {
  fs::path dir = fs::temp_directory_path() / ("files_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "out").string();
  {
    AtomicFileWriter writer(path);
    ASSERT_TRUE(writer.Open().ok());
    ASSERT_TRUE(writer.Append("partial").ok());
    EXPECT_FALSE(fs::exists(path));
    // Destroyed without Commit: the temporary file goes too.
  }
  EXPECT_TRUE(fs::is_empty(dir));
  ASSERT_TRUE(WriteFileAtomically(path, "whole").ok());
  EXPECT_EQ(*ReadFile(path), "whole");
  int entries = 0;
  for (auto& e : fs::directory_iterator(dir)) entries += e.is_regular_file();
  EXPECT_EQ(entries, 1);
  fs::remove_all(dir);
}

TEST(FilesTest, ReadFileErrorsKeepTheirMeaning) {
  EXPECT_EQ(ReadFile("/nonexistent/file").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadFile("/").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(FilesTest, EscapeNonUtf8) {
  EXPECT_EQ(EscapeNonUtf8("plain/ascii.jpg"), "plain/ascii.jpg");
  EXPECT_EQ(EscapeNonUtf8("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(EscapeNonUtf8("bad\xff\xfe.jpg"), "bad\\xFF\\xFE.jpg");
  EXPECT_EQ(EscapeNonUtf8("cut\xc3"), "cut\\xC3");
}

TEST(HashingTest, Sha256KnownValue) {
  Sha256 h;
  h.Update("ab");
  h.Update("c");
  EXPECT_EQ(h.HexDigest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(HashingTest, ContentHashSeparatesContents) {
  EXPECT_EQ(ContentHash("same").size(), 16u);
  EXPECT_EQ(ContentHash("same"), ContentHash("same"));
  EXPECT_NE(ContentHash("same"), ContentHash("Same"));
}

}  // namespace
}  // namespace retrain
