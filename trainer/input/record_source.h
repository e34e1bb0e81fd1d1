// The records of one split, read through the shards' index files, in a
// deterministic order per epoch, partitioned between ranks, resumable.
#pragma once

#include <cstdint>
#include <cstdio>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "common/tfrecord.h"
#include "dataset/layout.h"
#include "trainer/input/dataset_manifest.h"

namespace retrain::trainer {

// A record's place in the split: shard number (in manifest order) and its
// number within that shard.
struct RecordId {
  int32_t shard = 0;
  int32_t index = 0;

  int64_t Pack() const {
    return (static_cast<int64_t>(shard) << 32) | static_cast<uint32_t>(index);
  }
  static RecordId Unpack(int64_t v) {
    return {static_cast<int32_t>(v >> 32), static_cast<int32_t>(v & 0xffffffff)};
  }
  bool operator==(const RecordId& o) const { return shard == o.shard && index == o.index; }
  bool operator!=(const RecordId& o) const { return !(*this == o); }
  bool operator<(const RecordId& o) const { return Pack() < o.Pack(); }
};

// One record and where it came from.
struct Record {
  RecordId id;
  // The record's payload: a serialized tf.Example (TFRecord shards), or the
  // sample's tar members (WebDataset shards; dataset::ParseSample).
  std::string data;
  dataset::ShardFormat format = dataset::ShardFormat::kTfRecord;
  const ShardInfo* shard = nullptr;  // owned by the RecordSource; for messages
  int64_t offset = 0;  // byte offset of the record's length field, or of the sample's first header

  // "<shard path>: record at offset <offset>", for error messages.
  std::string Where() const;
};

// Reads a split's records.
//
// Order. Epoch e (0, 1, ...) lists every record of the split once: the shard
// order is shuffled with (seed, e) when `shuffle_shards` (TensorFlow's
// string_input_producer), then `num_readers` readers each take the next shard
// of that order, and records are taken one from each reader in turn until
// its shard ends, when it takes the next shard (TensorFlow's parallel
// readers, made deterministic).
//
// Ranks. Rank r of `world_size` takes records r, r + W, r + 2W, ... of that
// list, and only the first floor(N / W) * W records of the epoch are dealt:
// every rank gets the same number of records per epoch (so that synchronous
// data-parallel training takes the same number of steps on every rank) and
// the ranks' records are disjoint. The N mod W records at the end of each
// epoch's list are dropped; with shuffled shards they are different records
// each epoch. For a one-pass evaluation with several ranks this means up to
// W - 1 validation records are not seen; evaluate on one rank to see all.
//
// Position. {epoch, index} is the next record to read: `index` counts this
// rank's records of that epoch. Seek() to a saved position continues with
// exactly the records that would have come next.
//
// Errors. A truncated or corrupt record, or an index entry that does not
// match the shard, throws TrainerError(kData) naming the file and the byte
// offset, unless `skip_corrupt`: then the record is skipped and counted.
//
// Not thread-safe: one thread uses a RecordSource.
class RecordSource {
 public:
  struct Options {
    uint64_t seed = 0;
    bool shuffle_shards = true;  // shuffle the shard order each epoch
    bool repeat = true;          // false: one epoch, then Next() returns false
    int num_readers = 4;         // shards read interleaved (>= 1)
    int rank = 0;                // this process's part, 0 <= rank < world_size
    int world_size = 1;
    bool skip_corrupt = false;  // skip and count bad records instead of throwing
    int max_open_files = 16;    // file handles kept open (at least num_readers)
    // The manifest's: how the shards and their index files are read.
    dataset::ShardFormat shard_format = dataset::ShardFormat::kTfRecord;
  };

  struct Position {
    int64_t epoch = 0;
    int64_t index = 0;  // into this rank's records of `epoch`
    bool operator==(const Position& o) const { return epoch == o.epoch && index == o.index; }
  };

  // Loads the index file of every shard of `split` (which must outlive this
  // object). Throws TrainerError: kData for a bad index (wrong line count,
  // unparsable line, an entry outside the shard) or an empty split, kConfig
  // for bad options (rank outside [0, world_size), more ranks than records).
  RecordSource(const SplitInfo& split, const Options& options);
  ~RecordSource();
  RecordSource(const RecordSource&) = delete;
  RecordSource& operator=(const RecordSource&) = delete;

  // Reads the next record. False at the end of the only epoch when !repeat.
  bool Next(Record* out);

  // The next record to be read.
  Position position() const { return position_; }
  void Seek(const Position& position);

  // Reads one record by id (random access, e.g. to refill a shuffle buffer
  // on resume). Throws TrainerError(kData) when it is corrupt, whatever
  // skip_corrupt says, or kConfig when `id` is not in the split.
  void Read(RecordId id, Record* out);

  // This rank's records of `epoch`, in reading order.
  std::vector<RecordId> EpochOrder(int64_t epoch) const;

  // Records each rank reads per epoch: floor(split records / world_size).
  int64_t records_per_epoch() const { return per_rank_; }
  int64_t num_skipped() const { return num_skipped_; }
  const SplitInfo& split() const { return split_; }

 private:
  struct IndexEntry {
    int64_t offset;
    int64_t size;
  };
  // An open shard: a TFRecord reader, or the file of a WebDataset shard.
  struct OpenFile {
    int32_t shard;
    std::unique_ptr<TfRecordReader> reader;
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file{nullptr, &std::fclose};
  };
  // Reads record `id` into `out`; false (with *error set) on a bad record.
  bool ReadRecord(RecordId id, Record* out, std::string* error);
  // Reads the bytes of record `id`'s sample (WebDataset shards), likewise.
  bool ReadSample(RecordId id, Record* out, std::string* error);
  OpenFile& OpenShard(int32_t shard);
  void LoadEpoch(int64_t epoch);

  const SplitInfo& split_;
  const Options options_;
  std::vector<std::vector<IndexEntry>> index_;  // per shard, per record
  int64_t per_rank_ = 0;

  Position position_;
  int64_t loaded_epoch_ = -1;
  std::vector<RecordId> order_;  // this rank's records of loaded_epoch_
  int64_t num_skipped_ = 0;

  // Open shards, most recently used first.
  std::list<OpenFile> open_files_;
};

}  // namespace retrain::trainer
