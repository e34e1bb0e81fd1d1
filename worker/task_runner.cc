#include "worker/task_runner.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/hashing.h"
#include "common/status_macros.h"
#include "common/tfrecord.h"
#include "dataset/layout.h"
#include "dataset/webdataset.h"
#include "worker/build/workspace.h"
#include "worker/example_encoder.h"
#include "worker/image/image_format.h"
#include "worker/image/image_probe.h"
#include "worker/image/record_image.h"
#include "worker/ordered_parallel.h"

namespace retrain::worker {

namespace v1 = retrain::v1;

namespace {

// How far a shard's write-back may lag behind its writing (see
// AtomicFileWriter::StartWriteBehind).
constexpr int64_t kShardWriteBehindBytes = 2 << 20;

struct FileFailure {
  v1::SkipReason reason = v1::SKIP_REASON_UNSPECIFIED;
  std::string detail;
};

// Reads a source file; failures become skip reasons.
bool ReadSource(const std::string& path, std::string* bytes, FileFailure* failure) {
  auto data = ReadFile(path);
  if (data.ok()) {
    *bytes = *std::move(data);
    return true;
  }
  const bool dir = data.status().code() == absl::StatusCode::kFailedPrecondition &&
                   absl::StrContains(data.status().message(), "directory");
  failure->reason = dir ? v1::SKIP_REASON_NOT_A_FILE : v1::SKIP_REASON_UNREADABLE;
  failure->detail = std::string(data.status().message());
  return false;
}

bool Cancelled(const RunContext& c) { return c.cancelled != nullptr && c.cancelled->load(); }

// Calls `progress` at most a few times a second.
class ProgressThrottle {
 public:
  explicit ProgressThrottle(const RunContext& c) : c_(c) {}
  void Update(int64_t done, int64_t bytes, bool force = false) {
    if (!c_.progress) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(500)) return;
    last_ = now;
    c_.progress(done, bytes);
  }

 private:
  const RunContext& c_;
  std::chrono::steady_clock::time_point last_{};
};

std::string BaseName(const std::string& relative_path) {
  const auto slash = relative_path.rfind('/');
  return slash == std::string::npos ? relative_path : relative_path.substr(slash + 1);
}

// How a build task's files are validated: its max_pixels (0: the default)
// and verify mode ("" or "full": every JPEG scan decoded; "structure").
absl::StatusOr<image::ProbeOptions> ProbeOptionsOf(int64_t max_pixels, const std::string& verify) {
  image::ProbeOptions options;
  if (max_pixels > 0) options.max_pixels = max_pixels;
  ASSIGN_OR_RETURN(const dataset::VerifyMode mode, TaskVerifyMode(verify));
  options.jpeg_structure_only = mode == dataset::VerifyMode::kStructure;
  return options;
}

absl::Status RequireWorkspace(const char* kind, const std::string& workspace) {
  if (workspace.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kind, " task: workspace is required"));
  }
  return absl::OkStatus();
}

// `name` parsed by `parse`, or `fallback` for ""; INVALID_ARGUMENT naming
// `what` and the names this worker knows otherwise.
template <typename Enum>
absl::StatusOr<Enum> KnownToThisWorker(const char* what, const std::string& name, Enum fallback,
                                       bool (*parse)(std::string_view, Enum*),
                                       const std::string& known) {
  Enum value = fallback;
  if (name.empty() || parse(name, &value)) return value;
  return absl::InvalidArgumentError(
      absl::StrCat(what, " '", name, "' is unknown to this worker (it knows ", known, ")"));
}

}  // namespace

absl::StatusOr<dataset::ShardFormat> TaskShardFormat(const std::string& name) {
  return KnownToThisWorker("shard format", name, dataset::ShardFormat::kTfRecord,
                           dataset::ParseShardFormat, dataset::ShardFormatNames());
}

absl::StatusOr<dataset::VerifyMode> TaskVerifyMode(const std::string& name) {
  return KnownToThisWorker("verify mode", name, dataset::VerifyMode::kFull,
                           dataset::ParseVerifyMode, dataset::VerifyModeNames());
}

// A shard's records as they go into it, in its format, and its index file.
class ShardFraming {
 public:
  ShardFraming(dataset::ShardFormat format, std::string file_name)
      : format_(format), file_name_(std::move(file_name)) {}

  // One record: a serialized tf.Example (TFRecord), or the image with its
  // entry's label and name (WebDataset). `at`: where `out` starts in the
  // shard; `out` is replaced by the record's bytes.
  void Frame(std::string_view example, const image::RecordImage& image, const v1::ShardEntry& entry,
             int64_t at, std::string* out) {
    out->clear();
    if (format_ == dataset::ShardFormat::kTfRecord) {
      AppendTfRecord(example, out);
      index_ += dataset::IndexLine({at, static_cast<int64_t>(out->size())});
    } else {
      dataset::Sample sample;
      sample.key = dataset::SampleKey(file_name_, records_);
      sample.jpeg = image.jpeg;
      sample.label = entry.label();
      sample.label_name = entry.label_text();
      sample.filename = BaseName(entry.relative_path());
      sample.height = image.height;
      sample.width = image.width;
      std::vector<dataset::TarMember> members;
      dataset::AppendSample(sample, at, out, &members);
      index_ += dataset::WebDatasetIndexLine(members);
    }
    ++records_;
  }
  // The bytes after the last record: the end of a tar file.
  std::string Trailer() const {
    std::string end;
    if (format_ == dataset::ShardFormat::kWebDataset) dataset::AppendTarEnd(&end);
    return end;
  }
  std::string IndexText() const {
    return format_ == dataset::ShardFormat::kWebDataset
               ? dataset::WebDatasetIndexHeader(records_) + index_
               : index_;
  }

 private:
  const dataset::ShardFormat format_;
  const std::string file_name_;
  int64_t records_ = 0;
  std::string index_;
};

absl::StatusOr<v1::ShardResult> RunShardTask(const v1::ShardTask& task, const RunContext& context) {
  RETURN_IF_ERROR(RequireWorkspace("shard", task.workspace()));
  ASSIGN_OR_RETURN(const dataset::ShardFormat format, TaskShardFormat(task.format()));
  v1::ShardEntries entries;
  RETURN_IF_ERROR(
      ReadWorkspaceFile(ShardEntriesFile(task.workspace(), task.file_name()), &entries));
  ASSIGN_OR_RETURN(const image::ProbeOptions options,
                   ProbeOptionsOf(task.max_pixels(), task.verify()));
  const std::string shard_path = dataset::JoinPath(task.output_directory(), task.file_name());
  const std::string index_path =
      dataset::JoinPath(task.output_directory(), dataset::IndexFileFor(task.file_name()));
  const std::string index_dir = std::filesystem::path(index_path).parent_path();
  std::error_code ec;
  std::filesystem::create_directories(index_dir, ec);
  if (ec) {
    return absl::Status(ErrnoToCode(ec.value()),
                        absl::StrCat(index_dir, ": cannot create: ", ec.message()));
  }
  AtomicFileWriter shard(shard_path);
  AtomicFileWriter index(index_path);
  RETURN_IF_ERROR(shard.Open());
  RETURN_IF_ERROR(index.Open());
  shard.StartWriteBehind(kShardWriteBehindBytes);

  struct Item {
    bool ok = false;
    FileFailure failure;
    std::string example;       // the serialized tf.Example (TFRecord)
    image::RecordImage image;  // its image (WebDataset)
    bool converted = false;
    std::string content_hash;  // of the source file
  };
  v1::ShardResult result;
  Sha256 sha;
  std::string framed;
  ShardFraming framing(format, task.file_name());
  absl::Status write_status;
  int64_t records = 0;
  std::map<int, std::pair<std::string, int64_t>> per_label;  // id -> name, records
  ProgressThrottle progress(context);
  const size_t n = entries.entries_size();
  RunOrdered<Item>(
      n, context.threads, 4 * context.threads,
      [&](size_t i) {
        const auto& entry = entries.entries(i);
        Item item;
        if (Cancelled(context)) return item;
        std::string bytes;
        if (!ReadSource(task.directory() + "/" + entry.relative_path(), &bytes, &item.failure)) {
          return item;
        }
        item.content_hash = ContentHash(bytes);
        image::MakeOutcome made =
            image::MakeRecordImage(std::move(bytes), options, task.jpeg_quality());
        if (!made.ok) {
          item.failure = {made.reason, made.detail};
          return item;
        }
        item.converted = made.image.converted;
        if (format == dataset::ShardFormat::kTfRecord) {
          ExampleFields fields;
          fields.jpeg = made.image.jpeg;
          fields.height = made.image.height;
          fields.width = made.image.width;
          fields.label = entry.label();
          fields.text = entry.label_text();
          const std::string base = BaseName(entry.relative_path());
          fields.filename = base;
          item.example = EncodeExample(fields);
        } else {
          item.image = std::move(made.image);
        }
        item.ok = true;
        return item;
      },
      [&](size_t i, Item&& item) {
        if (Cancelled(context)) return false;
        result.add_content_hashes(item.ok ? std::move(item.content_hash) : std::string());
        if (!item.ok) {
          auto* s = result.add_skipped();
          s->set_path(EscapeNonUtf8(entries.entries(i).relative_path()));
          s->set_split(task.split());
          s->set_reason(item.failure.reason);
          s->set_detail(item.failure.detail);
          return true;
        }
        framing.Frame(item.example, item.image, entries.entries(i), shard.bytes_written(), &framed);
        sha.Update(framed);
        write_status = shard.Append(framed);
        ++records;
        auto& label = per_label[entries.entries(i).label()];
        label.first = entries.entries(i).label_text();
        ++label.second;
        if (item.converted) result.set_num_converted(result.num_converted() + 1);
        progress.Update(static_cast<int64_t>(i + 1), shard.bytes_written());
        return write_status.ok();
      });
  if (Cancelled(context)) return absl::CancelledError("task cancelled");
  RETURN_IF_ERROR(write_status);
  const std::string trailer = framing.Trailer();
  sha.Update(trailer);
  RETURN_IF_ERROR(shard.Append(trailer));
  RETURN_IF_ERROR(index.Append(framing.IndexText()));
  if (context.confirm_lease &&
      !context.confirm_lease(static_cast<int64_t>(n), shard.bytes_written())) {
    return absl::CancelledError("the coordinator did not confirm the lease; output dropped");
  }
  // The index goes into place first: a visible shard always has its index.
  RETURN_IF_ERROR(index.Commit());
  RETURN_IF_ERROR(shard.Commit());
  auto* info = result.mutable_shard();
  info->set_file(task.file_name());
  info->set_num_records(records);
  info->set_num_bytes(shard.bytes_written());
  info->set_sha256(sha.HexDigest());
  for (const auto& [id, label] : per_label) {
    auto* c = result.add_class_counts();
    c->set_label(id);
    c->set_name(label.first);
    c->set_count(label.second);
  }
  progress.Update(static_cast<int64_t>(n), shard.bytes_written(), /*force=*/true);
  // For the build's finalization; the coordinator does without the counts
  // and hashes.
  RETURN_IF_ERROR(WriteWorkspaceFile(ShardWrittenFile(task.workspace(), task.file_name()), result));
  result.clear_class_counts();
  result.clear_content_hashes();
  return result;
}

}  // namespace retrain::worker
