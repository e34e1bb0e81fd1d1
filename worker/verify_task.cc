#include "worker/verify_task.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/hashing.h"
#include "common/request_refusal.h"
#include "common/status_macros.h"
#include "common/tfrecord.h"
#include "dataset/example_features.h"
#include "dataset/layout.h"
#include "dataset/manifest.h"
#include "tensorflow/core/example/example.pb.h"
#include "worker/image/image_probe.h"
#include "worker/shard_check.h"
#include "worker/verify_webdataset.h"

namespace retrain::worker {

namespace v1 = retrain::v1;

namespace {

struct Record {
  int64_t offset = 0;  // of its length field in the shard
  int64_t size = 0;    // framed: kTfRecordOverhead + data
  std::string data;
};

// Reads a shard's records in order, up to a batch at a time, until the end
// or the first damaged frame, which is reported: past it the framing cannot
// be trusted. Each record read is added, framed, to `hash`: its length and
// checksums were checked, so the frame is the file's bytes, and the shard is
// read once for its records and its SHA-256 (good_bytes() says where the
// bytes hashed end).
class RecordBatches {
 public:
  RecordBatches(const std::string& path, const std::string& file, DamageList& damage,
                Sha256& hash)
      : path_(path), file_(file), damage_(damage), hash_(hash) {
    if (!reader_.Open(path)) {
      damage_.Add(file_, -1, reader_.error());
      done_ = true;
      damaged_ = true;
      opened_ = false;
    }
  }
  // The next records (none at the end) into `batch`.
  void Next(std::vector<Record>* batch) {
    batch->clear();
    while (!done_ && batch->size() < kVerifyRecordsPerBatch) {
      Record r;
      r.offset = reader_.offset();
      const TfRecordReader::Result result = reader_.Next(&r.data);
      if (result == TfRecordReader::Result::kEnd) {
        done_ = true;
      } else if (result != TfRecordReader::Result::kRecord) {
        // "<path>: corrupt record at offset N (why)": the file and offset
        // have fields of their own.
        std::string why = reader_.error();
        if (why.rfind(path_ + ": ", 0) == 0) why = why.substr(path_.size() + 2);
        damage_.Add(file_, r.offset, absl::StrCat(why, "; records after it cannot be read"));
        done_ = true;
        damaged_ = true;
      } else {
        r.size = reader_.offset() - r.offset;
        frame_.clear();
        AppendTfRecord(r.data, &frame_);
        hash_.Update(frame_);
        good_bytes_ = reader_.offset();
        batch->push_back(std::move(r));
      }
    }
  }
  // Whether a frame was damaged (or the file could not be opened).
  bool damaged() const { return damaged_; }
  bool opened() const { return opened_; }
  // Bytes from the start of the file that are in the hash.
  int64_t good_bytes() const { return good_bytes_; }

 private:
  const std::string& path_;
  const std::string& file_;
  DamageList& damage_;
  Sha256& hash_;
  std::string frame_;
  int64_t good_bytes_ = 0;
  bool opened_ = true;
  TfRecordReader reader_;
  bool done_ = false;
  bool damaged_ = false;
};

const tensorflow::Feature* FindFeature(const tensorflow::Example& example, const char* key) {
  const auto& features = example.features().feature();
  auto it = features.find(key);
  return it == features.end() ? nullptr : &it->second;
}

bool OneInt(const tensorflow::Feature* f, int64_t* value) {
  if (f == nullptr || f->int64_list().value_size() != 1) return false;
  *value = f->int64_list().value(0);
  return true;
}

bool OneBytes(const tensorflow::Feature* f, std::string_view* value) {
  if (f == nullptr || f->bytes_list().value_size() != 1) return false;
  *value = f->bytes_list().value(0);
  return true;
}

// What is wrong with one record's tf.Example; "" when nothing.
std::string CheckExample(const std::string& data, int num_classes) {
  tensorflow::Example example;
  if (!example.ParseFromString(data)) return "not a serialized tf.Example";
  std::string_view jpeg, colorspace, format;
  int64_t height = 0, width = 0, channels = 0, label = 0;
  if (!OneBytes(FindFeature(example, dataset::kImageEncoded), &jpeg)) {
    return absl::StrCat("no single ", dataset::kImageEncoded, " bytes value");
  }
  if (!OneInt(FindFeature(example, dataset::kClassLabel), &label)) {
    return absl::StrCat("no single ", dataset::kClassLabel, " int64 value");
  }
  if (label < 0 || (num_classes > 0 && label >= num_classes)) {
    return absl::StrCat(dataset::kClassLabel, " ", label, " is not a class of the dataset (0..",
                        num_classes - 1, ")");
  }
  if (!OneInt(FindFeature(example, dataset::kImageHeight), &height) ||
      !OneInt(FindFeature(example, dataset::kImageWidth), &width) ||
      !OneInt(FindFeature(example, dataset::kImageChannels), &channels) ||
      !OneBytes(FindFeature(example, dataset::kImageColorspace), &colorspace) ||
      !OneBytes(FindFeature(example, dataset::kImageFormat), &format) ||
      channels != dataset::kChannels || colorspace != dataset::kColorspace ||
      format != dataset::kFormatJpeg) {
    return "its height, width, channels, colorspace or format feature is missing or not what "
           "a retrain shard holds (3, RGB, JPEG)";
  }
  return CheckRecordJpeg(jpeg, height, width);
}

// Compares the index file with the records read.
void CheckIndex(const v1::VerifyShardTask& task, const std::vector<dataset::IndexEntry>& records,
                bool framing_damaged, DamageList& damage) {
  const std::string path = dataset::JoinPath(task.data_dir(), task.index());
  std::ifstream in(path);
  if (!in) {
    damage.Add(task.index(), -1, "missing: readers that need the index (DALI) cannot use the shard");
    return;
  }
  std::string line;
  size_t entry = 0;
  int64_t line_offset = 0;
  while (std::getline(in, line)) {
    const int64_t at = line_offset;
    line_offset += static_cast<int64_t>(line.size()) + 1;
    if (line.empty()) continue;
    dataset::IndexEntry listed;
    if (!dataset::ParseIndexLine(line, &listed)) {
      damage.Add(task.index(), at, absl::StrCat("entry ", entry, " is not \"<offset> <size>\": ",
                                                line.substr(0, 80)));
    } else if (entry < records.size() &&
               (listed.offset != records[entry].offset || listed.size != records[entry].size)) {
      damage.Add(task.index(), at,
                 absl::StrCat("entry ", entry, " says offset ", listed.offset, ", size ", listed.size,
                              "; the record is at ", records[entry].offset, " with ",
                              records[entry].size, " bytes"));
    }
    ++entry;
  }
  if (!framing_damaged && entry != records.size()) {
    damage.Add(task.index(), -1,
               absl::StrCat("lists ", entry, " records; the shard holds ", records.size()));
  }
}

// Fills `result` and `damage`; CANCELLED when the task was.
absl::Status VerifyShard(const v1::VerifyShardTask& task, const RunContext& context,
                         DamageList& damage, v1::VerifyShardResult& result) {
  const std::string path = dataset::JoinPath(task.data_dir(), task.file());
  ASSIGN_OR_RETURN(const dataset::ShardFormat format, TaskShardFormat(task.format()));
  const bool webdataset = format == dataset::ShardFormat::kWebDataset;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    damage.Add(task.file(), -1, "missing");
    if (webdataset) {
      CheckMissingWebDatasetShardIndex(task, damage);
    } else {
      CheckIndex(task, {}, /*framing_damaged=*/true, damage);
    }
    return absl::OkStatus();
  }
  const int64_t size = st.st_size;
  result.set_bytes(size);
  if (size != task.num_bytes()) {
    damage.AddFileProblem(task.file(),
                          absl::StrCat("is ", size, " bytes; the manifest says ", task.num_bytes()));
  }
  if (webdataset) return VerifyWebDatasetShard(task, path, context, damage, result);
  // The records, a batch at a time: each batch's examples checked on the
  // task's threads; only their places are kept, for the index.
  Sha256 hash;
  RecordBatches reader(path, task.file(), damage, hash);
  std::vector<dataset::IndexEntry> records;
  std::vector<Record> batch;
  const auto cancelled = [&] { return context.cancelled != nullptr && context.cancelled->load(); };
  for (reader.Next(&batch); !batch.empty() && !cancelled(); reader.Next(&batch)) {
    const size_t first = records.size();
    CheckRecords(
        batch.size(), first, "record",
        [&](size_t i) { return CheckExample(batch[i].data, task.num_classes()); },
        [&](size_t i) { return batch[i].offset; }, context, task.file(), damage, result);
    for (const Record& r : batch) records.push_back({r.offset, r.size});
  }
  if (cancelled()) return absl::CancelledError("cancelled");
  // What follows the last good record (nothing in an intact shard) is hashed
  // from the file.
  if (!reader.opened()) {
    // Its damage says why; there are no bytes to hash.
  } else if (!HashFrom(path, reader.good_bytes(), hash)) {
    damage.AddFileProblem(task.file(), "cannot be read");
  } else if (std::string sha256 = hash.HexDigest(); !task.sha256().empty() && sha256 != task.sha256()) {
    damage.AddFileProblem(task.file(),
                          absl::StrCat("SHA-256 is ", sha256, "; the manifest says ", task.sha256()));
  }
  const bool framing_damaged = reader.damaged();
  if (!framing_damaged && static_cast<int64_t>(records.size()) != task.num_records()) {
    damage.Add(task.file(), -1,
               absl::StrCat("holds ", records.size(), " records; the manifest says ",
                            task.num_records()));
  }
  CheckIndex(task, records, framing_damaged, damage);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::VerifyShardResult> RunVerifyShardTask(const v1::VerifyShardTask& task,
                                                         const RunContext& context) {
  v1::VerifyShardResult result;
  result.set_file(task.file());
  DamageList damage(&result);
  const absl::Status status = VerifyShard(task, context, damage, result);
  if (!status.ok()) return status;
  damage.Finish();
  if (context.progress) context.progress(result.records(), result.bytes());
  return result;
}

v1::CheckVerifyResult RunCheckVerifyTask(const v1::CheckVerifyTask& task) {
  v1::CheckVerifyResult result;
  const std::string& data_dir = task.spec().data_dir();
  auto refuse = [&](const absl::Status& status) {
    *result.mutable_refusal() = RefusalOf(status);
    return result;
  };
  const absl::Status confined = CheckUnderRootsOnThisHost(
      "spec.data_dir", data_dir, {task.data_roots().begin(), task.data_roots().end()});
  if (!confined.ok()) return refuse(confined);
  dataset::Manifest manifest;
  std::string error;
  if (!dataset::ReadManifest(data_dir, &manifest, &error)) {
    return refuse(absl::FailedPreconditionError(absl::StrCat("spec.data_dir: ", error)));
  }
  for (const auto& [name, split] : manifest.splits) {
    for (const dataset::ShardInfo& shard : split.shards) {
      v1::VerifyShardTask& t = *result.add_shards();
      t.set_data_dir(data_dir);
      t.set_file(shard.file);
      t.set_index(shard.index);
      t.set_num_records(shard.num_records);
      t.set_num_bytes(shard.num_bytes);
      t.set_sha256(shard.sha256);
      t.set_num_classes(manifest.num_classes);
      t.set_format(dataset::ShardFormatName(manifest.shard_format));
    }
  }
  if (result.shards().empty()) {
    return refuse(absl::FailedPreconditionError(absl::StrCat(
        "spec.data_dir: ", data_dir, "'s manifest lists no shards: nothing to verify")));
  }
  return result;
}

}  // namespace retrain::worker
