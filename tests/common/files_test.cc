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

// The write-behind thread writes back while Append() goes on; what it
// saves is time (bench/dataset_build.sh), what must hold is the file.
TEST(FilesTest, WriteBehindKeepsEveryByteInOrder) {
  fs::path dir = fs::temp_directory_path() / ("files_test_wb_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "out").string();
  std::string expected;
  AtomicFileWriter writer(path);
  ASSERT_TRUE(writer.Open().ok());
  writer.StartWriteBehind(64 << 10);
  for (int i = 0; i < 300; ++i) {
    // Uneven pieces, so that write-back ranges end inside them.
    const std::string piece(1000 + 977 * i % 50000, static_cast<char>('a' + i % 26));
    expected += piece;
    ASSERT_TRUE(writer.Append(piece).ok());
    EXPECT_FALSE(fs::exists(path));
  }
  ASSERT_TRUE(writer.Commit().ok());
  EXPECT_EQ(*ReadFile(path), expected);

  // Started and dropped without a byte or a Commit: nothing is left.
  {
    AtomicFileWriter dropped((dir / "dropped").string());
    ASSERT_TRUE(dropped.Open().ok());
    dropped.StartWriteBehind(1);
    ASSERT_TRUE(dropped.Append("x").ok());
  }
  EXPECT_FALSE(fs::exists(dir / "dropped"));
  int entries = 0;
  for (auto& entry : fs::directory_iterator(dir)) entries += entry.is_regular_file();
  EXPECT_EQ(entries, 1);
  fs::remove_all(dir);
}

TEST(FilesTest, ReadFileErrorsKeepTheirMeaning) {
  EXPECT_EQ(ReadFile("/nonexistent/file").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadFile("/").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(FilesTest, ReadFileReadsEverySizeWhole) {
  fs::path dir = fs::temp_directory_path() / ("files_read_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "f").string();
  // Empty, below and across the 4 KiB read past the end, and large.
  for (size_t size :
       {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{4097}, size_t{3} << 20}) {
    std::string data(size, '\0');
    for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>(i * 131 + size);
    ASSERT_TRUE(WriteFileAtomically(path, data).ok());
    auto read = ReadFile(path);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->size(), size);
    EXPECT_TRUE(*read == data) << "size " << size;
  }
  fs::remove_all(dir);
}

TEST(FilesTest, ReadFileReadsFilesWhoseSizeStatDoesNotGive) {
  // /proc files report size 0 and still have content, here several reads'
  // worth of it: read to the end.
  auto smaps = ReadFile("/proc/self/smaps");
  ASSERT_TRUE(smaps.ok()) << smaps.status();
  EXPECT_GT(smaps->size(), 3 * 4096u);
  EXPECT_NE(smaps->find("Rss:"), std::string::npos);
  EXPECT_NE(smaps->rfind("VmFlags:"), std::string::npos);
  EXPECT_EQ(smaps->back(), '\n');
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
