#include "worker/build/dataset_manifest.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/dataset_build.h"
#include "common/job_states.h"
#include "dataset/layout.h"

namespace retrain::worker {

namespace v1 = retrain::v1;

namespace {

dataset::SplitInfo SplitInfoOf(const std::string& name, const v1::SplitResult& result) {
  dataset::SplitInfo split;
  split.name = name;
  split.num_records = result.num_records();
  split.num_converted = result.num_converted();
  for (const auto& s : result.shards()) {
    dataset::ShardInfo& shard = split.shards.emplace_back();
    shard.file = s.file();
    shard.index = dataset::IndexFileFor(s.file());
    shard.num_records = s.num_records();
    shard.num_bytes = s.num_bytes();
    shard.sha256 = s.sha256();
  }
  for (const auto& c : result.class_counts()) {
    split.class_counts.push_back({c.label(), c.name(), c.count()});
  }
  return split;
}

}  // namespace

std::string SkipReasonName(v1::SkipReason reason) {
  return EnumLabel(v1::SkipReason_Name(reason), "SKIP_REASON_");
}

dataset::Manifest DatasetManifest(const v1::Job& job, const v1::DatasetBuildResult& result) {
  const auto& spec = job.dataset_build();
  dataset::Manifest m;
  m.shard_format = ShardFormatOf(spec);
  m.format = dataset::ManifestFormatFor(m.shard_format);
  m.job_id = job.id();
  m.created = google::protobuf::util::TimeUtil::ToString(job.update_time());
  m.num_classes = result.labels_size() + (spec.background_class() ? 1 : 0);
  m.background_class = spec.background_class();
  for (const auto& l : result.labels()) m.labels.push_back({l.id(), l.name()});
  if (!spec.train_directory().empty()) m.splits["train"] = SplitInfoOf("train", result.train());
  if (!spec.validation_directory().empty()) {
    m.splits["validation"] = SplitInfoOf("validation", result.validation());
  }
  for (const auto& s : result.skipped()) {
    m.skipped.push_back({s.path(), s.split(), SkipReasonName(s.reason()), s.detail()});
  }
  for (const auto& d : result.duplicates()) {
    m.duplicates.emplace_back(d.paths().begin(), d.paths().end());
  }
  m.num_skipped = std::max<int64_t>(result.num_skipped(), result.skipped_size());
  m.num_duplicate_groups =
      std::max<int64_t>(result.num_duplicate_groups(), result.duplicates_size());
  m.skipped_file = result.skipped_file();
  m.duplicates_file = result.duplicates_file();
  m.seed = spec.seed();
  m.options = {spec.train_directory(), spec.validation_directory(), spec.output_directory(),
               spec.labels_file(),     spec.train_shards(),         spec.validation_shards(),
               spec.jpeg_quality(),    spec.max_pixels(),           spec.background_class(),
               spec.verify()};
  return m;
}

std::string DatasetManifestJson(const v1::Job& job, const v1::DatasetBuildResult& result) {
  return dataset::ManifestJson(DatasetManifest(job, result));
}

std::string LabelsText(const v1::DatasetBuildResult& result, bool background_class) {
  std::string out = background_class ? "0:background\n" : "";
  for (const auto& l : result.labels()) absl::StrAppend(&out, l.id(), ":", l.name(), "\n");
  return out;
}

}  // namespace retrain::worker
