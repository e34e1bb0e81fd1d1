#include "server/dataset_manifest.h"

#include <google/protobuf/util/time_util.h>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace retrain::server {

namespace v1 = retrain::v1;
using nlohmann::json;

namespace {

json SplitJson(const v1::SplitResult& split) {
  json shards = json::array();
  for (const auto& s : split.shards()) {
    shards.push_back({{"file", s.file()},
                      {"num_records", s.num_records()},
                      {"num_bytes", s.num_bytes()},
                      {"sha256", s.sha256()},
                      {"index", absl::StrCat("index/", s.file(), ".idx")}});
  }
  json counts = json::array();
  for (const auto& c : split.class_counts()) {
    counts.push_back({{"id", c.label()}, {"name", c.name()}, {"count", c.count()}});
  }
  return {{"num_records", split.num_records()},
          {"num_shards", split.shards_size()},
          {"num_converted", split.num_converted()},
          {"shards", shards},
          {"class_counts", counts}};
}

std::string ReasonName(v1::SkipReason reason) {
  // SKIP_REASON_TOO_MANY_PIXELS -> "too_many_pixels"
  return absl::AsciiStrToLower(v1::SkipReason_Name(reason).substr(12));
}

}  // namespace

std::string DatasetManifestJson(const v1::Job& job, const v1::DatasetBuildResult& result) {
  const auto& spec = job.dataset_build();
  json labels = json::array();
  for (const auto& l : result.labels()) labels.push_back({{"id", l.id()}, {"name", l.name()}});
  json splits = json::object();
  if (!spec.train_directory().empty()) splits["train"] = SplitJson(result.train());
  if (!spec.validation_directory().empty()) splits["validation"] = SplitJson(result.validation());
  json skipped = json::array();
  for (const auto& s : result.skipped()) {
    skipped.push_back({{"path", s.path()},
                       {"split", s.split()},
                       {"reason", ReasonName(s.reason())},
                       {"detail", s.detail()}});
  }
  json duplicates = json::array();
  for (const auto& d : result.duplicates()) {
    duplicates.push_back(json(std::vector<std::string>(d.paths().begin(), d.paths().end())));
  }
  const int num_classes = result.labels_size() + (spec.background_class() ? 1 : 0);
  json manifest = {
      {"format", "retrain-dataset/1"},
      {"job_id", job.id()},
      {"created", google::protobuf::util::TimeUtil::ToString(job.update_time())},
      {"num_classes", num_classes},
      {"background_class", spec.background_class()},
      {"labels", labels},
      {"splits", splits},
      {"skipped", skipped},
      {"duplicates", duplicates},
      {"seed", spec.seed()},
      {"options",
       {{"train_directory", spec.train_directory()},
        {"validation_directory", spec.validation_directory()},
        {"output_directory", spec.output_directory()},
        {"labels_file", spec.labels_file()},
        {"train_shards", spec.train_shards()},
        {"validation_shards", spec.validation_shards()},
        {"jpeg_quality", spec.jpeg_quality()},
        {"max_pixels", spec.max_pixels()},
        {"background_class", spec.background_class()}}},
  };
  return manifest.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string LabelsText(const v1::DatasetBuildResult& result, bool background_class) {
  std::string out = background_class ? "0:background\n" : "";
  for (const auto& l : result.labels()) absl::StrAppend(&out, l.id(), ":", l.name(), "\n");
  return out;
}

}  // namespace retrain::server
