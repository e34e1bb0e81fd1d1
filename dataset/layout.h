// Where a retrain dataset keeps what: the names of its shards, index files,
// manifest and labels file. The builder writes these names and every reader
// (trainer, worker, benchmarks, tests) finds files by them; nothing else
// spells them.
//
//   <data_dir>/dataset.json                    the manifest (manifest.h)
//   <data_dir>/labels.txt                      "<id>:<name>" per line
//   <data_dir>/train-00000-of-00128            TFRecord shards
//   <data_dir>/index/train-00000-of-00128.idx  DALI index, one per shard
//
// Free of abseil, gRPC, libvips and LibTorch: every part of retrain,
// the trainer on GPU hosts included, builds it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace retrain::dataset {

inline constexpr char kManifestFile[] = "dataset.json";
inline constexpr char kLabelsFile[] = "labels.txt";
inline constexpr char kIndexDirectory[] = "index";
// The format the manifest declares; readers refuse a newer one.
inline constexpr char kFormatPrefix[] = "retrain-dataset/";
inline constexpr char kFormat[] = "retrain-dataset/1";

// "train-00003-of-00128": shard `index` (from 0) of `count` in `split`.
std::string ShardFileName(const std::string& split, int index, int count);

// "index/train-00003-of-00128.idx": a shard's index file, relative to the
// data directory, as the manifest records it.
std::string IndexFileFor(const std::string& shard_file);

// One line of a shard's index file per record, in shard order (DALI's
// TFRecord index): "<offset> <size>\n", the record's byte offset in the
// shard and its framed size.
struct IndexEntry {
  int64_t offset = 0;
  int64_t size = 0;
};
std::string IndexLine(const IndexEntry& entry);
// Parses one line (without its newline; spaces, tabs and a carriage return
// around the numbers are allowed). False when it is not two non-negative
// decimal numbers.
bool ParseIndexLine(std::string_view line, IndexEntry* entry);

// `dir`/`name`, with one slash between them; `name` alone when `dir` is "".
std::string JoinPath(const std::string& dir, const std::string& name);

}  // namespace retrain::dataset
