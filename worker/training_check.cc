#include "worker/training_check.h"

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/request_refusal.h"
#include "common/status_macros.h"
#include "dataset/manifest.h"
#include "trainer/spec/checkpoint_summary.h"
#include "trainer/spec/safetensors_header.h"

namespace retrain::worker {

namespace v1 = retrain::v1;
namespace fs = std::filesystem;

namespace {

constexpr char kPretrainedField[] = "spec.pretrained_model_checkpoint_path";

v1::WeightsFacts FactsOf(const trainer::CheckpointSummary& summary) {
  v1::WeightsFacts facts;
  facts.set_model(summary.model);
  facts.set_num_classes(summary.num_classes);
  facts.set_step(summary.step);
  return facts;
}

// The weights a run would start from: a retrain-trainer checkpoint (its
// summary) or a safetensors file (its header; the model is the header's or,
// when it names none, the request's).
absl::StatusOr<v1::WeightsFacts> ReadPretrainedWeights(const v1::TrainingSpec& spec) {
  const std::string& path = spec.pretrained_model_checkpoint_path();
  if (!trainer::IsSafetensorsPath(path)) {
    auto summary = trainer::ReadCheckpointSummary(path);
    if (!summary) {
      return absl::FailedPreconditionError(
          absl::StrCat(kPretrainedField, ": ", path, " is not a retrain-trainer checkpoint (no ",
                       trainer::CheckpointSummaryPath(""),
                       " summary beside it) nor a .safetensors weights file"));
    }
    return FactsOf(*summary);
  }
  trainer::SafetensorsIndex index;
  std::string error;
  if (trainer::ReadSafetensorsIndex(path, &index, &error) != trainer::SafetensorsRead::kOk) {
    return absl::FailedPreconditionError(absl::StrCat(kPretrainedField, ": ", error));
  }
  const auto fc = index.tensors.find("fc.weight");
  if (fc == index.tensors.end() || fc->second.shape.size() != 2) {
    return absl::FailedPreconditionError(absl::StrCat(
        kPretrainedField, ": ", path,
        " has no classifier tensor fc.weight [classes, features]: not the weights of a model "
        "retrain trains (scripts/weights_to_safetensors.py writes them)"));
  }
  v1::WeightsFacts facts;
  const auto named = index.metadata.find(trainer::kSafetensorsModelKey);
  facts.set_model(named != index.metadata.end() ? named->second : spec.model());
  facts.set_num_classes(fc->second.shape[0]);
  return facts;
}

absl::Status CheckTraining(const v1::TrainingSpec& spec, const std::vector<std::string>& roots,
                           v1::CheckTrainingResult& result) {
  RETURN_IF_ERROR(CheckUnderRootsOnThisHost("spec.data_dir", spec.data_dir(), roots));
  RETURN_IF_ERROR(CheckUnderRootsOnThisHost("spec.train_dir", spec.train_dir(), roots));
  if (!spec.pretrained_model_checkpoint_path().empty()) {
    RETURN_IF_ERROR(CheckUnderRootsOnThisHost(kPretrainedField,
                                              spec.pretrained_model_checkpoint_path(), roots));
  }
  dataset::Manifest manifest;
  std::string error;
  if (!dataset::LoadManifest(spec.data_dir(), &manifest, &error)) {
    return absl::FailedPreconditionError(absl::StrCat("spec.data_dir: ", error));
  }
  result.set_manifest_json(dataset::ManifestJson(manifest));
  if (auto resumed = trainer::NewestCheckpointSummary(spec.train_dir())) {
    *result.mutable_resumed() = FactsOf(*resumed);
  }
  if (!spec.pretrained_model_checkpoint_path().empty()) {
    ASSIGN_OR_RETURN(*result.mutable_pretrained(), ReadPretrainedWeights(spec));
  }
  // The trainer writes there.
  std::error_code ec;
  fs::create_directories(spec.train_dir(), ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("spec.train_dir: cannot create ", spec.train_dir(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status CheckEvaluation(const v1::EvaluationSpec& spec,
                             const std::vector<std::string>& roots) {
  RETURN_IF_ERROR(CheckUnderRootsOnThisHost("spec.data_dir", spec.data_dir(), roots));
  RETURN_IF_ERROR(CheckUnderRootsOnThisHost("spec.checkpoint_dir", spec.checkpoint_dir(), roots));
  std::error_code ec;
  if (!fs::exists(fs::path(spec.checkpoint_dir()) / "checkpoint", ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "spec.checkpoint_dir: ", spec.checkpoint_dir(), " holds no checkpoint; train first"));
  }
  return absl::OkStatus();
}

}  // namespace

v1::CheckTrainingResult RunCheckTrainingTask(const v1::CheckTrainingTask& task) {
  const std::vector<std::string> roots(task.data_roots().begin(), task.data_roots().end());
  v1::CheckTrainingResult result;
  const absl::Status checked = task.has_training() ? CheckTraining(task.training(), roots, result)
                                                   : CheckEvaluation(task.evaluation(), roots);
  if (!checked.ok()) {
    result.Clear();
    *result.mutable_refusal() = RefusalOf(checked);
  }
  return result;
}

}  // namespace retrain::worker
