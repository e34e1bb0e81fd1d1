// Where a retrain dataset keeps what: the names of its shards, index files,
// manifest and labels file. The builder writes these names and every reader
// (trainer, worker, benchmarks, tests) finds files by them; nothing else
// spells them.
//
//   <data_dir>/dataset.json                    the manifest (manifest.h)
//   <data_dir>/labels.txt                      "<id>:<name>" per line
//   <data_dir>/train-00000-of-00128            TFRecord shards, or
//   <data_dir>/train-000000.tar                WebDataset shards
//   <data_dir>/index/train-00000-of-00128.idx  DALI index, one per shard
//                   (index/train-000000.idx)
//   <data_dir>/skipped.jsonl                   every file left out, one JSON
//                                              object per line
//   <data_dir>/duplicates.jsonl                every group of identical files,
//                                              one JSON array per line
// While a build runs it also keeps a hidden directory there, which readers
// ignore and the build removes when it ends: the workspace (.retrain-build)
// of its listing, shard plan and what each shard task wrote.
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
inline constexpr char kSkippedFile[] = "skipped.jsonl";
inline constexpr char kDuplicatesFile[] = "duplicates.jsonl";
inline constexpr char kBuildWorkspaceDirectory[] = ".retrain-build";
// The format the manifest declares; readers refuse a newer one. Version 2
// is a dataset of WebDataset shards (the manifest's shard_format says so);
// a TFRecord dataset's manifest says version 1, which readers that know
// only TFRecord shards read, as they refuse version 2.
inline constexpr char kFormatPrefix[] = "retrain-dataset/";
inline constexpr char kFormat[] = "retrain-dataset/1";
inline constexpr char kWebDatasetFormat[] = "retrain-dataset/2";

// What a dataset's shards hold: TFRecord files of tf.Example records
// (example_features.h), or WebDataset tar files (webdataset.h).
enum class ShardFormat { kTfRecord, kWebDataset };
// "tfrecord", "webdataset": the manifest's shard_format, the build's
// DatasetBuildSpec.format and the CLI's --format.
const char* ShardFormatName(ShardFormat format);
// False when `name` is neither ("" is not a name).
bool ParseShardFormat(std::string_view name, ShardFormat* format);
// "tfrecord, webdataset": for errors that list the choices.
std::string ShardFormatNames();

// How much of each JPEG a build's validation reads: every scan
// entropy-decoded (kFull), or its structure alone (kStructure: marker
// segments, frame header, scans present, EOI in place), for input the user
// already trusts. Other formats are decoded either way.
enum class VerifyMode { kFull, kStructure };
// "full", "structure": the build's DatasetBuildSpec.verify, the CLI's
// --verify and the manifest's options.verify.
const char* VerifyModeName(VerifyMode mode);
// False when `name` is neither ("" is not a name).
bool ParseVerifyMode(std::string_view name, VerifyMode* mode);
// "full, structure": for errors that list the choices.
std::string VerifyModeNames();

// Shard `index` (from 0) of `count` in `split`: "train-00003-of-00128"
// (TFRecord, as the reference names them) or "train-000003.tar" (WebDataset,
// as its tools do).
std::string ShardFileName(const std::string& split, int index, int count, ShardFormat format);

// "index/train-00003-of-00128.idx", "index/train-000003.idx": a shard's
// index file, relative to the data directory, as the manifest records it.
std::string IndexFileFor(const std::string& shard_file);

// One line of a TFRecord shard's index file per record, in shard order
// (DALI's TFRecord index): "<offset> <size>\n", the record's byte offset in
// the shard and its framed size. (WebDataset's index: webdataset.h.)
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

// The hidden directory a build keeps in its output directory while it runs.
std::string BuildWorkspaceDirectory(const std::string& output_directory);

}  // namespace retrain::dataset
