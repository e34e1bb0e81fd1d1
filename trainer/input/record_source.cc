#include "trainer/input/record_source.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>

#include "common/logging.h"
#include "dataset/layout.h"
#include "dataset/webdataset.h"
#include "trainer/input/random.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

[[noreturn]] void Throw(TrainerError::Kind kind, const std::string& message) {
  throw TrainerError(kind, message);
}

constexpr const char* kRebuild = "rebuild the dataset with retrain build-dataset";

// The byte range of each record a shard's DALI index file lists: "<offset>
// <size>" lines (TFRecord), or "v1.2 <samples>" and a line of members per
// sample (WebDataset: the range from the first member's header to the end
// of the last one's data).
std::vector<std::pair<int64_t, int64_t>> ReadIndexFile(const ShardInfo& shard,
                                                       dataset::ShardFormat format) {
  std::ifstream in(shard.index_path);
  if (!in) {
    Throw(TrainerError::Kind::kData,
          shard.index_path + ": cannot open: " + std::strerror(errno) + "; " + kRebuild);
  }
  const bool webdataset = format == dataset::ShardFormat::kWebDataset;
  std::vector<std::pair<int64_t, int64_t>> entries;
  entries.reserve(static_cast<size_t>(shard.num_records));
  std::string line;
  int64_t line_number = 0;
  const auto bad_line = [&](const char* expected) {
    Throw(TrainerError::Kind::kData, shard.index_path + ":" + std::to_string(line_number) +
                                         ": not " + expected + "; " + kRebuild);
  };
  if (webdataset) {
    int64_t samples = 0;
    ++line_number;
    if (!std::getline(in, line) || !dataset::ParseWebDatasetIndexHeader(line, &samples)) {
      bad_line("a WebDataset index's first line \"v1.2 <samples>\"");
    }
  }
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    if (webdataset) {
      std::vector<dataset::TarMember> members;
      if (!dataset::ParseWebDatasetIndexLine(line, &members)) {
        bad_line("a WebDataset index line \"<ext> <offset> <size> <name> ...\"");
      }
      const int64_t begin = dataset::SampleBegin(members);
      entries.emplace_back(begin, dataset::SampleEnd(members) - begin);
      continue;
    }
    dataset::IndexEntry entry;
    if (!dataset::ParseIndexLine(line, &entry)) bad_line("an index line \"<offset> <size>\"");
    entries.emplace_back(entry.offset, entry.size);
  }
  return entries;
}

// The least bytes a record takes in a shard of `format`.
int64_t SmallestRecord(dataset::ShardFormat format) {
  return format == dataset::ShardFormat::kWebDataset ? dataset::kTarBlockSize : kTfRecordOverhead;
}

}  // namespace

std::string Record::Where() const {
  return (shard != nullptr ? shard->path : std::string("?")) + ": record at offset " +
         std::to_string(offset);
}

RecordSource::RecordSource(const SplitInfo& split, const Options& options)
    : split_(split), options_(options) {
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size) {
    Throw(TrainerError::Kind::kConfig, "rank " + std::to_string(options_.rank) +
                                           " is outside [0, world_size " +
                                           std::to_string(options_.world_size) + ")");
  }
  if (options_.num_readers < 1) {
    Throw(TrainerError::Kind::kConfig,
          "--num_readers must be at least 1 (got " + std::to_string(options_.num_readers) + ")");
  }
  if (split_.shards.size() > static_cast<size_t>(INT32_MAX)) {
    Throw(TrainerError::Kind::kData, "split " + split_.name + " has too many shards");
  }
  index_.resize(split_.shards.size());
  int64_t total = 0;
  for (size_t s = 0; s < split_.shards.size(); ++s) {
    const ShardInfo& shard = split_.shards[s];
    const auto entries = ReadIndexFile(shard, options_.shard_format);
    if (static_cast<int64_t>(entries.size()) != shard.num_records) {
      Throw(TrainerError::Kind::kData,
            shard.index_path + " lists " + std::to_string(entries.size()) +
                " records but the manifest says " + shard.file + " holds " +
                std::to_string(shard.num_records) + "; " + kRebuild);
    }
    auto& index = index_[s];
    index.reserve(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto [offset, size] = entries[i];
      if (offset < 0 || size < SmallestRecord(options_.shard_format) ||
          offset + size > shard.num_bytes) {
        Throw(TrainerError::Kind::kData,
              shard.index_path + ":" + std::to_string(i + 1) + ": record at offset " +
                  std::to_string(offset) + " of " + std::to_string(size) + " bytes lies outside " +
                  shard.file + " (" + std::to_string(shard.num_bytes) + " bytes); " + kRebuild);
      }
      index.push_back({offset, size});
    }
    total += shard.num_records;
  }
  if (total == 0) {
    Throw(TrainerError::Kind::kData, "the " + split_.name + " split has no records; " + kRebuild +
                                         " from a directory with images");
  }
  per_rank_ = total / options_.world_size;
  if (per_rank_ == 0) {
    Throw(TrainerError::Kind::kConfig, "world_size " + std::to_string(options_.world_size) +
                                           " exceeds the " + std::to_string(total) +
                                           " records of the " + split_.name + " split");
  }
}

RecordSource::~RecordSource() = default;

std::vector<RecordId> RecordSource::EpochOrder(int64_t epoch) const {
  const int32_t num_shards = static_cast<int32_t>(split_.shards.size());
  std::vector<int32_t> shard_order(num_shards);
  std::iota(shard_order.begin(), shard_order.end(), 0);
  if (options_.shuffle_shards) {
    Rng rng(StreamSeed(options_.seed, RandomPurpose::kShardOrder, static_cast<uint64_t>(epoch)));
    DeterministicShuffle(shard_order.data(), shard_order.data() + shard_order.size(), &rng);
  }

  // Interleave: each reader slot reads its shard to the end, then takes the
  // next shard of the order; one record per slot in turn.
  struct Slot {
    int32_t shard;
    int32_t next;
  };
  size_t next_shard = 0;
  auto open = [&](Slot* slot) {
    while (next_shard < shard_order.size()) {
      const int32_t s = shard_order[next_shard++];
      if (!index_[s].empty()) {
        *slot = {s, 0};
        return true;
      }
    }
    return false;
  };
  std::vector<Slot> slots;
  for (int r = 0; r < options_.num_readers; ++r) {
    Slot slot;
    if (!open(&slot)) break;
    slots.push_back(slot);
  }
  const int64_t dealt = per_rank_ * options_.world_size;
  std::vector<RecordId> order;
  order.reserve(static_cast<size_t>(per_rank_));
  int64_t position = 0;
  while (!slots.empty() && position < dealt) {
    for (size_t i = 0; i < slots.size() && position < dealt;) {
      Slot& slot = slots[i];
      if (position % options_.world_size == options_.rank) order.push_back({slot.shard, slot.next});
      ++position;
      if (++slot.next == static_cast<int32_t>(index_[slot.shard].size()) && !open(&slot)) {
        slots.erase(slots.begin() + static_cast<std::ptrdiff_t>(i));
        continue;
      }
      ++i;
    }
  }
  return order;
}

void RecordSource::LoadEpoch(int64_t epoch) {
  if (loaded_epoch_ == epoch) return;
  order_ = EpochOrder(epoch);
  loaded_epoch_ = epoch;
}

void RecordSource::Seek(const Position& position) {
  if (position.epoch < 0 || position.index < 0 || position.index > per_rank_ ||
      (!options_.repeat && position.epoch != 0)) {
    Throw(TrainerError::Kind::kConfig,
          "input position (epoch " + std::to_string(position.epoch) + ", record " +
              std::to_string(position.index) + ") is outside the " + split_.name + " split's " +
              std::to_string(per_rank_) +
              " records per epoch: the checkpoint belongs to another dataset or world size");
  }
  position_ = position;
}

bool RecordSource::Next(Record* out) {
  for (;;) {
    if (position_.index >= per_rank_) {
      if (!options_.repeat) return false;
      position_ = {position_.epoch + 1, 0};
    }
    LoadEpoch(position_.epoch);
    const RecordId id = order_[static_cast<size_t>(position_.index)];
    ++position_.index;
    std::string error;
    if (ReadRecord(id, out, &error)) return true;
    if (!options_.skip_corrupt) Throw(TrainerError::Kind::kData, error);
    Logger("input")->warn("skipping a corrupt record: {}", error);
    ++num_skipped_;
  }
}

void RecordSource::Read(RecordId id, Record* out) {
  if (id.shard < 0 || id.shard >= static_cast<int32_t>(index_.size()) || id.index < 0 ||
      id.index >= static_cast<int32_t>(index_[id.shard].size())) {
    Throw(TrainerError::Kind::kConfig,
          "record " + std::to_string(id.index) + " of shard " + std::to_string(id.shard) +
              " is not in the " + split_.name +
              " split: the checkpoint's input position belongs to another dataset");
  }
  std::string error;
  if (!ReadRecord(id, out, &error)) Throw(TrainerError::Kind::kData, error);
}

RecordSource::OpenFile& RecordSource::OpenShard(int32_t shard) {
  for (auto it = open_files_.begin(); it != open_files_.end(); ++it) {
    if (it->shard == shard) {
      open_files_.splice(open_files_.begin(), open_files_, it);
      return open_files_.front();
    }
  }
  const std::string& path = split_.shards[shard].path;
  OpenFile opened{shard, nullptr};
  if (options_.shard_format == dataset::ShardFormat::kWebDataset) {
    opened.file.reset(std::fopen(path.c_str(), "rb"));
    if (opened.file == nullptr) {
      Throw(TrainerError::Kind::kData,
            path + ": cannot open: " + std::strerror(errno) + "; restore the shard or " + kRebuild);
    }
  } else {
    opened.reader = std::make_unique<TfRecordReader>();
    if (!opened.reader->Open(path)) {
      Throw(TrainerError::Kind::kData,
            opened.reader->error() + "; restore the shard or " + kRebuild);
    }
  }
  const size_t limit = static_cast<size_t>(std::max(options_.max_open_files, options_.num_readers));
  while (open_files_.size() >= limit) open_files_.pop_back();
  open_files_.push_front(std::move(opened));
  return open_files_.front();
}

bool RecordSource::ReadSample(RecordId id, Record* out, std::string* error) {
  const IndexEntry& entry = index_[id.shard][id.index];
  std::FILE* file = OpenShard(id.shard).file.get();
  out->data.resize(static_cast<size_t>(entry.size));
  if (::fseeko(file, entry.offset, SEEK_SET) != 0 ||
      std::fread(out->data.data(), 1, out->data.size(), file) != out->data.size()) {
    *error = out->Where() + ": " +
             (std::ferror(file) ? std::string("cannot read: ") + std::strerror(errno)
                                : std::string("the shard ends before this sample")) +
             " (sample " + std::to_string(id.index) + " as " + out->shard->index_path +
             " lists it; the shard or its index is damaged); " + kRebuild;
    out->data.clear();
    open_files_.pop_front();  // reopened at the next read: no state to trust
    return false;
  }
  return true;
}

bool RecordSource::ReadRecord(RecordId id, Record* out, std::string* error) {
  const IndexEntry& entry = index_[id.shard][id.index];
  out->id = id;
  out->shard = &split_.shards[id.shard];
  out->offset = entry.offset;
  out->format = options_.shard_format;
  if (options_.shard_format == dataset::ShardFormat::kWebDataset) return ReadSample(id, out, error);
  TfRecordReader* reader = OpenShard(id.shard).reader.get();
  // Sequential reads within a shard need no seek.
  const auto result = reader->offset() == entry.offset ? reader->Next(&out->data)
                                                       : reader->ReadAt(entry.offset, &out->data);
  if (result != TfRecordReader::Result::kRecord) {
    // The offset comes from the index: either file may be the damaged one.
    const std::string listed = " (record " + std::to_string(id.index) + " as " +
                               out->shard->index_path + " lists it; the shard or its index is " +
                               "damaged); ";
    *error = result == TfRecordReader::Result::kEnd
                 ? out->Where() + ": the shard ends before this record" + listed + kRebuild
                 : reader->error() + listed + kRebuild;
    out->data.clear();
    open_files_.pop_front();  // reopened at the next read: no state to trust
    return false;
  }
  if (static_cast<int64_t>(out->data.size()) + kTfRecordOverhead != entry.size) {
    *error = out->Where() + ": the record is " +
             std::to_string(out->data.size() + kTfRecordOverhead) + " bytes but " +
             out->shard->index_path + " says " + std::to_string(entry.size) + "; " + kRebuild;
    return false;
  }
  return true;
}

}  // namespace retrain::trainer
