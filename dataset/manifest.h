// dataset.json, the manifest a finished build leaves beside its shards: one
// struct, its writer (the coordinator) and its reader (trainer, worker,
// coordinator). ManifestJson(ParseManifest(x)) keeps every field, and the
// writer's bytes depend only on the struct (keys in sorted order).
//
// Exception-free: the reader returns false and an error that names the file,
// the field and what to do. Free of abseil, gRPC, libvips and LibTorch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "dataset/layout.h"

namespace retrain::dataset {

struct ShardInfo {
  std::string file;        // base name, e.g. "train-00000-of-00128"
  std::string path;        // <data_dir>/<file> (reader only)
  std::string index;       // relative to the data directory: IndexFileFor(file)
  std::string index_path;  // <data_dir>/<index> (reader only)
  int64_t num_records = 0;
  int64_t num_bytes = 0;  // size of the shard file: records with their framing
  std::string sha256;     // lower-case hex of the whole file; "" when not recorded
};

struct ClassCount {
  int64_t id = 0;
  std::string name;
  int64_t count = 0;
};

struct SplitInfo {
  std::string name;  // "train" or "validation"
  int64_t num_records = 0;
  int64_t num_converted = 0;  // records whose JPEG was re-encoded
  std::vector<ShardInfo> shards;
  std::vector<ClassCount> class_counts;

  int64_t num_bytes() const;
  // Mean framed record size in bytes (shard bytes / records); 0 when empty.
  double mean_record_bytes() const;
};

struct LabelInfo {
  int64_t id = 0;
  std::string name;
};

struct SkippedFile {
  std::string path;    // relative to its split's directory, e.g. "dog/x.jpg"
  std::string split;   // "train" or "validation"
  std::string reason;  // e.g. "truncated", "not_an_image"
  std::string detail;  // what the decoder said
};

// The build's options as it ran them (defaults filled in).
struct BuildOptions {
  std::string train_directory;
  std::string validation_directory;
  std::string output_directory;
  std::string labels_file;
  int64_t train_shards = 0;
  int64_t validation_shards = 0;
  int64_t jpeg_quality = 0;
  int64_t max_pixels = 0;
  bool background_class = true;
  // How much of each JPEG validation read (VerifyModeName); "" in manifests
  // written before the choice, which read every scan ("full").
  std::string verify;
};

// Files skipped and groups of duplicates a manifest (and a build's job
// result) lists at most; all of them are in the JSON-lines files.
inline constexpr int kManifestListLimit = 100;

struct Manifest {
  std::string data_dir;  // where it was read from (reader only)
  std::string format;    // as read: kFormat or kWebDatasetFormat (the writer derives it)
  ShardFormat shard_format = ShardFormat::kTfRecord;
  std::string job_id;
  std::string created;   // RFC 3339 time the build finished
  int num_classes = 0;   // logits a model needs: labels + 1 when background_class
  bool background_class = true;  // label 0 is the (empty) background class
  std::vector<LabelInfo> labels;
  std::map<std::string, SplitInfo> splits;  // "train" and/or "validation"
  // The first files left out and groups of identical files; all of them
  // are in skipped_file and duplicates_file (JSON lines in the data
  // directory, SkippedLine() and DuplicatesLine()), num_* count them.
  std::vector<SkippedFile> skipped;
  std::vector<std::vector<std::string>> duplicates;
  int64_t num_skipped = 0;
  int64_t num_duplicate_groups = 0;
  std::string skipped_file;     // kSkippedFile, "" in manifests written before it
  std::string duplicates_file;  // kDuplicatesFile, likewise
  uint64_t seed = 0;
  BuildOptions options;

  bool has_split(const std::string& name) const { return splits.count(name) != 0; }
  // The split, or null when the dataset was built without it.
  const SplitInfo* FindSplit(const std::string& name) const;
};

// What a reader says when it needs `split` and the dataset in `data_dir` was
// built without it.
std::string NoSplitError(const std::string& data_dir, const std::string& split);

// One line of skipped.jsonl (a JSON object: path, split, reason, detail)
// and of duplicates.jsonl (a JSON array of "split/path"), with the newline.
std::string SkippedLine(const SkippedFile& file);
std::string DuplicatesLine(const std::vector<std::string>& group);

// The manifest format that describes a dataset of `shard_format` shards:
// kFormat, or kWebDatasetFormat.
const char* ManifestFormatFor(ShardFormat shard_format);

// The manifest as JSON (two-space indent, keys sorted, a final newline);
// bytes that are not UTF-8 become U+FFFD.
std::string ManifestJson(const Manifest& manifest);

// Parses `json_text` as the dataset.json of `data_dir`. Checks its structure
// (types, counts that add up, shard and index names that stay inside the
// directory) but not the files. What readers need is required; the record
// of the build (job, skipped files, duplicates, options) is read when
// present. On failure returns false and sets *error.
bool ParseManifest(std::string_view json_text, const std::string& data_dir, Manifest* manifest,
                   std::string* error);

// Reads <data_dir>/dataset.json and checks that every shard and index file
// it lists exists, and that each shard has the size the manifest records.
// Every failure (no directory, no manifest, unreadable or corrupt JSON, a
// missing or changed shard, a missing index) names the file and says what
// to do, e.g. "run retrain build-dataset first".
bool LoadManifest(const std::string& data_dir, Manifest* manifest, std::string* error);

// Reads <data_dir>/dataset.json and parses it, without looking at the shards
// (for a check that reports each damaged file itself).
bool ReadManifest(const std::string& data_dir, Manifest* manifest, std::string* error);

}  // namespace retrain::dataset
