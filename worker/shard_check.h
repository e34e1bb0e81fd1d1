// What verify-dataset's checks of a shard share, whatever the shard's
// format (verify_task.cc, verify_webdataset.cc): the list of problems found,
// hashing the rest of a file, and the check of a record's JPEG.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/hashing.h"
#include "retrain/v1/worker.pb.h"
#include "worker/task_runner.h"

namespace retrain::worker {

// Most problems one shard reports; past it, one last entry counts the rest.
inline constexpr int kMaxDamagePerShard = 20;
// Records checked per progress report.
inline constexpr int64_t kVerifyProgressEvery = 256;
// Records read ahead and checked together: what a shard costs in memory
// (a few MiB of JPEGs), however large the shard.
inline constexpr size_t kVerifyRecordsPerBatch = 256;

// Collects problems, at most kMaxDamagePerShard of them, then counts. The
// whole file's problems (its size, its SHA-256) go first, ahead of those of
// its records, whenever they are found.
class DamageList {
 public:
  explicit DamageList(retrain::v1::VerifyShardResult* result) : result_(result) {}
  // Adds the count of what did not fit.
  void Finish() {
    if (dropped_ > 0) {
      Append(result_->file(), -1, absl::StrCat("and ", dropped_, " more problems"));
    }
    dropped_ = 0;
  }
  void Add(const std::string& file, int64_t offset, std::string problem) {
    if (result_->damage_size() >= kMaxDamagePerShard) {
      ++dropped_;
      return;
    }
    Append(file, offset, std::move(problem));
  }
  // A problem of the whole file: after the others of its kind, ahead of the
  // records'; one of theirs makes room for it when the list is full.
  void AddFileProblem(const std::string& file, std::string problem) {
    auto* list = result_->mutable_damage();
    if (list->size() >= kMaxDamagePerShard) {
      list->RemoveLast();
      ++dropped_;
    }
    Append(file, -1, std::move(problem));
    for (int i = list->size() - 1; i > file_problems_; --i) list->SwapElements(i, i - 1);
    ++file_problems_;
  }

 private:
  void Append(const std::string& file, int64_t offset, std::string problem) {
    auto* d = result_->add_damage();
    d->set_file(file);
    d->set_offset(offset);
    d->set_problem(std::move(problem));
  }

  retrain::v1::VerifyShardResult* result_;
  int64_t dropped_ = 0;
  int file_problems_ = 0;
};

// Checks a batch of `size` records of `file` on the task's threads:
// check(i) says what is wrong with record i of the batch ("" when
// nothing); each problem goes to `damage` at offset(i) as "<noun> N:
// <problem>", N counting the shard's records from `first`, the batch's
// first. Sets result.records and reports progress as it goes; stops early
// when the task is cancelled.
void CheckRecords(size_t size, size_t first, const char* noun,
                  const std::function<std::string(size_t)>& check,
                  const std::function<int64_t(size_t)>& offset, const RunContext& context,
                  const std::string& file, DamageList& damage,
                  retrain::v1::VerifyShardResult& result);

// Adds the file's bytes from `offset` to its end to `hash`; false when they
// cannot be read.
bool HashFrom(const std::string& path, int64_t offset, Sha256& hash);

// What is wrong with a record's JPEG, which the record says is `width` x
// `height`: its header and entropy-coded data fully decoded by
// libjpeg-turbo, a baseline RGB JPEG of that size; "" when nothing.
std::string CheckRecordJpeg(std::string_view jpeg, int64_t height, int64_t width);

}  // namespace retrain::worker
