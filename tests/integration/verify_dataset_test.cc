// `retrain verify-dataset` with the real coordinator, workers and CLI: an
// intact dataset passes; each kind of damage (a flipped bit, a truncated
// shard, a damaged JPEG in a record with valid checksums, a missing index,
// a missing shard, a manifest whose SHA-256 disagrees) is found and named
// with its file and offset.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "common/tfrecord.h"
#include "dataset/layout.h"
#include "dataset/webdataset.h"
#include "tensorflow/core/example/example.pb.h"
#include "tests/integration/build_fixtures.h"
#include "tests/support/cluster.h"

namespace retrain::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kShard[] = "train-00001-of-00003";

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// The offsets of a shard's records, from its index file.
std::vector<int64_t> RecordOffsets(const std::string& dir, const std::string& shard) {
  std::istringstream index(ReadAll(dir + "/" + dataset::IndexFileFor(shard)));
  std::vector<int64_t> offsets;
  int64_t offset, size;
  while (index >> offset >> size) offsets.push_back(offset);
  return offsets;
}

class VerifyDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteImages(root(), {"cat", "dog"}, 9, 3);
    cluster_.StartServer();
    cluster_.StartWorker(1);
    cluster_.StartWorker(1);
    const CommandResult r =
        cluster_.Cli({"build-dataset", "--train_directory", root() + "/data/train",
                      "--validation_directory", root() + "/data/validation", "--output_directory",
                      built(), "--train_shards", "3", "--validation_shards", "1", "--wait"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << cluster_.ServerLog();
  }

  const std::string& root() const { return dir_.path(); }
  std::string built() const { return root() + "/built"; }

  // A copy of the built dataset (or of `from`) to damage.
  std::string Copy(const std::string& name, const std::string& from = "") {
    const std::string dir = root() + "/" + name;
    fs::copy(from.empty() ? built() : from, dir, fs::copy_options::recursive);
    return dir;
  }

  CommandResult Verify(const std::string& dir) {
    return cluster_.Cli({"verify-dataset", "--data_dir", dir, "--wait"});
  }

  TempDir dir_;
  Cluster cluster_{dir_.path()};
};

TEST_F(VerifyDatasetTest, AnIntactDatasetPassesAndEachDamageIsNamedWithFileAndOffset) {
  CommandResult r = Verify(built());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("SUCCEEDED"));
  EXPECT_THAT(r.out, HasSubstr("checked: 4 shards, 24 records"));
  EXPECT_THAT(r.out, HasSubstr(": intact"));

  // A flipped bit in the middle of the shard's third record.
  const std::string flipped = Copy("flipped");
  const std::vector<int64_t> offsets = RecordOffsets(flipped, kShard);
  ASSERT_GE(offsets.size(), 3u);
  std::string bytes = ReadAll(flipped + "/" + kShard);
  bytes[offsets[2] + 200] ^= 0x10;
  WriteBytes(flipped + "/" + kShard, bytes);
  r = Verify(flipped);
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("damaged: 1 of 4 shards (train-00001-of-00003)"));
  EXPECT_THAT(r.out, HasSubstr(std::string(kShard) + " at offset " + std::to_string(offsets[2]) +
                               ": corrupt record at offset " + std::to_string(offsets[2]) +
                               " (data checksum mismatch)"));
  EXPECT_THAT(r.out, HasSubstr(std::string(kShard) + ": SHA-256 is "));

  // Cut short inside its last record.
  const std::string truncated = Copy("truncated");
  bytes = ReadAll(truncated + "/" + kShard);
  WriteBytes(truncated + "/" + kShard, bytes.substr(0, bytes.size() - 100));
  r = Verify(truncated);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.out, HasSubstr("truncated record at offset " + std::to_string(offsets.back())));
  EXPECT_THAT(r.out, HasSubstr("is " + std::to_string(bytes.size() - 100) +
                               " bytes; the manifest says " + std::to_string(bytes.size())));

  // Valid framing and checksums around a JPEG that ends early: only
  // decoding the image finds it.
  const std::string bad_jpeg = Copy("bad-jpeg");
  TfRecordReader reader;
  ASSERT_TRUE(reader.Open(bad_jpeg + "/" + kShard));
  std::string record, rewritten;
  for (size_t i = 0; reader.Next(&record) == TfRecordReader::Result::kRecord; ++i) {
    if (i == 1) {
      tensorflow::Example example;
      ASSERT_TRUE(example.ParseFromString(record));
      std::string* jpeg = (*example.mutable_features()->mutable_feature())["image/encoded"]
                              .mutable_bytes_list()
                              ->mutable_value(0);
      jpeg->resize(jpeg->size() / 2);
      record = example.SerializeAsString();
    }
    AppendTfRecord(record, &rewritten);
  }
  WriteBytes(bad_jpeg + "/" + kShard, rewritten);
  r = Verify(bad_jpeg);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.out, HasSubstr(std::string(kShard) + " at offset " + std::to_string(offsets[1]) +
                               ": record 1: its JPEG is damaged"));
  EXPECT_THAT(r.out, Not(HasSubstr("checksum mismatch")));
  EXPECT_THAT(r.out, HasSubstr("index/" + std::string(kShard) + ".idx at offset"))
      << "the records after it moved";

  // A missing index, a missing shard, and a manifest that disagrees.
  const std::string files = Copy("files");
  fs::remove(files + "/" + dataset::IndexFileFor("validation-00000-of-00001"));
  fs::remove(files + "/train-00002-of-00003");
  std::string manifest = ReadAll(files + "/dataset.json");
  const size_t sha = manifest.find("\"sha256\": \"") + 11;
  manifest[sha] = manifest[sha] == '0' ? '1' : '0';
  WriteBytes(files + "/dataset.json", manifest);
  r = Verify(files);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.out, HasSubstr("damaged: 3 of 4 shards"));
  EXPECT_THAT(r.out, HasSubstr("index/validation-00000-of-00001.idx: missing"));
  EXPECT_THAT(r.out, HasSubstr("train-00002-of-00003: missing"));
  EXPECT_THAT(r.out, HasSubstr("train-00000-of-00003: SHA-256 is "));
}

// The members of each sample of a WebDataset shard, from its index file.
std::vector<std::vector<dataset::TarMember>> Samples(const std::string& dir,
                                                     const std::string& shard) {
  std::istringstream index(ReadAll(dir + "/" + dataset::IndexFileFor(shard)));
  std::vector<std::vector<dataset::TarMember>> samples;
  std::string line;
  std::getline(index, line);  // "v1.2 <samples>"
  while (std::getline(index, line)) {
    EXPECT_TRUE(dataset::ParseWebDatasetIndexLine(line, &samples.emplace_back())) << line;
  }
  return samples;
}

// A WebDataset shard is read member by member: tar keeps no checksum of the
// data, so a changed label or image is found by reading the sample (and by
// the shard's SHA-256); a damaged header, a shard cut short and an index
// that disagrees are each named with the file and the offset.
TEST_F(VerifyDatasetTest, WebDatasetShardsAreReadMemberByMember) {
  const std::string wds = root() + "/wds";
  CommandResult r = cluster_.Cli({"build-dataset", "--train_directory", root() + "/data/train",
                                  "--validation_directory", root() + "/data/validation",
                                  "--output_directory", wds, "--train_shards", "3",
                                  "--validation_shards", "1", "--format", "webdataset", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = Verify(wds);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("checked: 4 shards, 24 records"));
  EXPECT_THAT(r.out, HasSubstr(": intact"));

  const std::string shard = "train-000001.tar";
  const auto samples = Samples(wds, shard);
  ASSERT_GE(samples.size(), 3u);
  const auto damaged = [&](const std::string& name, const std::function<void(std::string&)>& edit) {
    const std::string dir = Copy(name, wds);
    std::string bytes = ReadAll(dir + "/" + shard);
    edit(bytes);
    WriteBytes(dir + "/" + shard, bytes);
    const CommandResult verified = Verify(dir);
    EXPECT_EQ(verified.exit_code, 4) << name << ": " << verified.out << verified.err;
    EXPECT_THAT(verified.out, HasSubstr("damaged: 1 of 4 shards (" + shard + ")")) << name;
    return verified.out;
  };
  const std::string sample1 = shard + " at offset " + std::to_string(samples[1][0].offset - 512);
  // A label out of the classes (cat, dog and the background: 0..2).
  std::string out = damaged("label", [&](std::string& b) { b[samples[1][1].offset] = '7'; });
  EXPECT_THAT(out, HasSubstr(sample1 + ": sample 1: its .cls '7' is not a class"));
  EXPECT_THAT(out, HasSubstr(shard + ": SHA-256 is "));
  // The second half of a JPEG gone (zeros, the tar layout unchanged).
  out = damaged("jpeg", [&](std::string& b) {
    const auto& jpg = samples[2][0];
    std::fill(b.begin() + jpg.offset + jpg.size / 2, b.begin() + jpg.offset + jpg.size, '\0');
  });
  EXPECT_THAT(out, HasSubstr(": sample 2: its JPEG is damaged"));
  // A flipped bit in a header: nothing after it can be found.
  out = damaged("header", [&](std::string& b) { b[samples[1][1].offset - 512 + 3] ^= 0x10; });
  EXPECT_THAT(out, HasSubstr(shard + " at offset " + std::to_string(samples[1][1].offset - 512) +
                             ": header checksum mismatch; members after it cannot be read"));
  // Cut inside the last sample's data: the shard ends early, and its size.
  out = damaged("truncated", [&](std::string& b) { b.resize(b.size() - 1500); });
  EXPECT_THAT(out, HasSubstr("the file ends inside its data"));
  EXPECT_THAT(out, HasSubstr("bytes; the manifest says"));
  // An index entry that is not where the sample is.
  const std::string moved = Copy("index", wds);
  std::string index = ReadAll(moved + "/" + dataset::IndexFileFor(shard));
  const std::string offset = " " + std::to_string(samples[1][0].offset) + " ";
  const size_t entry1 = index.find('\n', index.find('\n') + 1);  // after "v1.2 N" and entry 0
  index.replace(index.find(offset, entry1), offset.size(), " 1024 ");
  WriteBytes(moved + "/" + dataset::IndexFileFor(shard), index);
  r = Verify(moved);
  EXPECT_EQ(r.exit_code, 4) << r.out;
  EXPECT_THAT(r.out, HasSubstr("index/train-000001.idx at offset"));
  EXPECT_THAT(r.out, HasSubstr("entry 1 is \"jpg 1024 "));
}

TEST_F(VerifyDatasetTest, ARequestWithoutADatasetIsRefusedNamingTheField) {
  CommandResult r = cluster_.Cli({"verify-dataset", "--data_dir", root() + "/data"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("spec.data_dir"));
  EXPECT_THAT(r.err, HasSubstr("dataset.json is missing"));
  r = cluster_.Cli({"verify-dataset", "--data_dir", "/etc"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("spec.data_dir"));
  // Spelled inside the roots, out of them by a symlink: the worker that
  // reads the manifest refuses it (the coordinator reads none).
  fs::create_directory_symlink("/usr", root() + "/escape");
  r = cluster_.Cli({"verify-dataset", "--data_dir", root() + "/escape/share"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("spec.data_dir"));
  EXPECT_THAT(r.err, HasSubstr("[PERMISSION_DENIED]"));
  r = cluster_.Cli({"verify-dataset", "--data_dir", built(), "--validate_only"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("request is valid"));
}

}  // namespace
}  // namespace retrain::testing
