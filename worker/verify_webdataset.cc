#include "worker/verify_webdataset.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dataset/layout.h"
#include "dataset/webdataset.h"

namespace retrain::worker {

namespace v1 = retrain::v1;

namespace {

// A sample as read: its members, with their data.
struct SampleRead {
  int64_t offset = 0;  // of its first member's header
  std::vector<dataset::TarMember> members;
  std::vector<std::string> data;  // per member
};

// Reads a shard's members in order and groups them into samples, up to a
// batch at a time, adding every byte read to `hash`; stops at the end of
// the archive or the first damaged header or short read, which is
// reported: past it the members cannot be found.
class SampleBatches {
 public:
  SampleBatches(const std::string& path, const std::string& file, DamageList& damage, Sha256& hash)
      : file_(file),
        damage_(damage),
        hash_(hash),
        f_(std::fopen(path.c_str(), "rb"), &std::fclose) {
    struct stat st;
    if (f_ == nullptr || ::fstat(::fileno(f_.get()), &st) != 0) {
      Damaged(-1, "cannot be opened");
    } else {
      size_ = static_cast<int64_t>(st.st_size);
    }
  }

  // The next samples (none at the end) into `batch`.
  void Next(std::vector<SampleRead>* batch) {
    batch->clear();
    while (!done_ && batch->size() < kVerifyRecordsPerBatch) {
      dataset::TarHeader header;
      const int64_t at = offset_;
      if (!ReadHeader(&header)) break;
      // A size past the end (a shard cut short) is never allocated.
      if (header.size > size_ - offset_) {
        Damaged(at, absl::StrCat(header.name, ": the file ends inside its data"));
        break;
      }
      std::string data;
      if (!Read(static_cast<size_t>(header.size), &data) ||
          !Read(static_cast<size_t>(dataset::TarPadding(header.size)), nullptr)) {
        Damaged(at, absl::StrCat(header.name, ": its data cannot be read"));
        break;
      }
      const std::string_view key = dataset::SampleKeyOf(header.name);
      if (!current_.members.empty() && dataset::SampleKeyOf(current_.members[0].name) != key) {
        batch->push_back(std::move(current_));
        current_ = SampleRead();
      }
      if (current_.members.empty()) current_.offset = at;
      current_.members.push_back({std::string(dataset::ExtensionOf(header.name)),
                                  at + dataset::kTarBlockSize, header.size, header.name});
      current_.data.push_back(std::move(data));
    }
    // A sample cut short by damage is not checked: the damage says why.
    if (done_ && !damaged_ && !current_.members.empty()) {
      batch->push_back(std::move(current_));
      current_ = SampleRead();
    }
  }
  bool damaged() const { return damaged_; }
  bool opened() const { return f_ != nullptr; }
  // Bytes from the start of the file that are in the hash.
  int64_t good_bytes() const { return offset_; }

 private:
  // The next member's header; false at the end of the archive (the two
  // zero blocks) or on damage, which it reports.
  bool ReadHeader(dataset::TarHeader* header) {
    const int64_t at = offset_;
    std::string block;
    if (!Read(static_cast<size_t>(dataset::kTarBlockSize), &block)) {
      Damaged(at, block.empty() ? "the file ends without the two zero blocks that end a tar file"
                                : "the file ends inside a member's header");
      return false;
    }
    bool end = false;
    std::string error;
    if (!dataset::ParseTarHeader(block, header, &end, &error)) {
      Damaged(at, absl::StrCat(error, "; members after it cannot be read"));
      return false;
    }
    if (!end) return true;
    done_ = true;
    std::string second;
    if (!Read(static_cast<size_t>(dataset::kTarBlockSize), &second) ||
        second.find_first_not_of('\0') != std::string::npos) {
      damage_.Add(file_, at, "one zero block where a tar file ends with two");
    }
    return false;
  }
  // Reads `n` bytes into `out` (may be null), hashing them; false when the
  // file ends first (`out` then holds what there was).
  bool Read(size_t n, std::string* out) {
    std::string buffer(n, '\0');
    const size_t got = f_ == nullptr ? 0 : std::fread(buffer.data(), 1, n, f_.get());
    buffer.resize(got);
    hash_.Update(buffer);
    offset_ += static_cast<int64_t>(got);
    if (out != nullptr) *out = std::move(buffer);
    return got == n;
  }
  void Damaged(int64_t at, std::string problem) {
    damage_.Add(file_, at, std::move(problem));
    damaged_ = true;
    done_ = true;
  }

  const std::string& file_;
  DamageList& damage_;
  Sha256& hash_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f_;
  int64_t size_ = 0;  // of the file
  int64_t offset_ = 0;
  SampleRead current_;
  bool done_ = false;
  bool damaged_ = false;
};

// What is wrong with a sample as retrain writes them; "" when nothing.
std::string CheckWebDatasetSample(const SampleRead& s, int num_classes) {
  std::vector<std::string> extensions;
  for (const auto& m : s.members) extensions.push_back(m.extension);
  const std::vector<std::string> expected = {dataset::kSampleImageExtension,
                                             dataset::kSampleLabelExtension,
                                             dataset::kSampleInfoExtension};
  if (extensions != expected) {
    return absl::StrCat("its members are .", absl::StrJoin(extensions, ", ."), ", not .",
                        absl::StrJoin(expected, ", ."));
  }
  int64_t label = 0;
  if (!absl::SimpleAtoi(s.data[1], &label) || label < 0 || label >= num_classes) {
    return absl::StrCat("its .", dataset::kSampleLabelExtension, " '", s.data[1].substr(0, 20),
                        "' is not a class of the dataset (0..", num_classes - 1, ")");
  }
  const nlohmann::json info = nlohmann::json::parse(s.data[2], nullptr, false);
  if (!info.is_object() || !info.contains("label") || !info["label"].is_number_integer() ||
      !info.contains("height") || !info["height"].is_number_integer() || !info.contains("width") ||
      !info["width"].is_number_integer()) {
    return absl::StrCat("its .", dataset::kSampleInfoExtension,
                        " is not an object with integer label, height and width");
  }
  if (info["label"].get<int64_t>() != label) {
    return absl::StrCat("its .", dataset::kSampleInfoExtension, " says label ",
                        info["label"].get<int64_t>(), ", its .", dataset::kSampleLabelExtension,
                        " ", label);
  }
  return CheckRecordJpeg(s.data[0], info["height"].get<int64_t>(), info["width"].get<int64_t>());
}

// Compares the index file with the samples read.
void CheckWebDatasetIndex(const v1::VerifyShardTask& task,
                          const std::vector<std::vector<dataset::TarMember>>& samples, bool damaged,
                          DamageList& damage) {
  const std::string path = dataset::JoinPath(task.data_dir(), task.index());
  std::ifstream in(path);
  if (!in) {
    damage.Add(task.index(), -1,
               "missing: readers that need the index (DALI) cannot use the shard");
    return;
  }
  std::string line;
  int64_t listed = 0;
  if (!std::getline(in, line) || !dataset::ParseWebDatasetIndexHeader(line, &listed)) {
    damage.Add(task.index(), 0,
               absl::StrCat("its first line is not \"", dataset::kWebDatasetIndexVersion,
                            " <samples>\": ", line.substr(0, 80)));
    return;
  }
  size_t entry = 0;
  int64_t line_offset = static_cast<int64_t>(line.size()) + 1;
  while (std::getline(in, line)) {
    const int64_t at = line_offset;
    line_offset += static_cast<int64_t>(line.size()) + 1;
    if (line.empty()) continue;
    std::vector<dataset::TarMember> members;
    if (!dataset::ParseWebDatasetIndexLine(line, &members)) {
      damage.Add(task.index(), at,
                 absl::StrCat("entry ", entry, " is not \"<ext> <offset> <size> <name> ...\": ",
                              line.substr(0, 80)));
    } else if (entry < samples.size() && dataset::WebDatasetIndexLine(members) !=
                                             dataset::WebDatasetIndexLine(samples[entry])) {
      std::string read = dataset::WebDatasetIndexLine(samples[entry]);
      read.pop_back();
      damage.Add(task.index(), at,
                 absl::StrCat("entry ", entry, " is \"", line.substr(0, 120),
                              "\"; the shard holds \"", read.substr(0, 120), "\""));
    }
    ++entry;
  }
  if (!damaged && (entry != samples.size() || listed != static_cast<int64_t>(samples.size()))) {
    damage.Add(task.index(), -1,
               absl::StrCat("lists ", entry, " samples (its first line says ", listed,
                            "); the shard holds ", samples.size()));
  }
}

}  // namespace

absl::Status VerifyWebDatasetShard(const v1::VerifyShardTask& task, const std::string& path,
                                   const RunContext& context, DamageList& damage,
                                   v1::VerifyShardResult& result) {
  Sha256 hash;
  SampleBatches reader(path, task.file(), damage, hash);
  std::vector<std::vector<dataset::TarMember>> samples;
  std::vector<SampleRead> batch;
  const auto cancelled = [&] { return context.cancelled != nullptr && context.cancelled->load(); };
  for (reader.Next(&batch); !batch.empty() && !cancelled(); reader.Next(&batch)) {
    const size_t first = samples.size();
    CheckRecords(
        batch.size(), first, "sample",
        [&](size_t i) { return CheckWebDatasetSample(batch[i], task.num_classes()); },
        [&](size_t i) { return batch[i].offset; }, context, task.file(), damage, result);
    for (SampleRead& s : batch) samples.push_back(std::move(s.members));
  }
  if (cancelled()) return absl::CancelledError("cancelled");
  // What follows the archive's end (nothing in an intact shard) is hashed
  // from the file.
  if (!reader.opened()) {
    // Its damage says why; there are no bytes to hash.
  } else if (!HashFrom(path, reader.good_bytes(), hash)) {
    damage.AddFileProblem(task.file(), "cannot be read");
  } else if (std::string sha256 = hash.HexDigest();
             !task.sha256().empty() && sha256 != task.sha256()) {
    damage.AddFileProblem(
        task.file(), absl::StrCat("SHA-256 is ", sha256, "; the manifest says ", task.sha256()));
  }
  if (!reader.damaged() && static_cast<int64_t>(samples.size()) != task.num_records()) {
    damage.Add(
        task.file(), -1,
        absl::StrCat("holds ", samples.size(), " samples; the manifest says ", task.num_records()));
  }
  CheckWebDatasetIndex(task, samples, reader.damaged(), damage);
  return absl::OkStatus();
}

void CheckMissingWebDatasetShardIndex(const v1::VerifyShardTask& task, DamageList& damage) {
  CheckWebDatasetIndex(task, {}, /*damaged=*/true, damage);
}

}  // namespace retrain::worker
