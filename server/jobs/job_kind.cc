#include "server/jobs/job_kind.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "server/jobs/dataset_build.h"
#include "server/jobs/dataset_verify.h"
#include "server/jobs/training.h"

namespace retrain::server {

std::string TaskName(const retrain::v1::TaskRecord& t) {
  if (t.task().has_shard()) {
    return absl::StrCat("task ", t.id(), " (", t.task().shard().file_name(), ")");
  }
  if (t.task().has_verify_shard()) {
    return absl::StrCat("task ", t.id(), " (", t.task().verify_shard().file(), ")");
  }
  return absl::StrCat("task ", t.id());
}

void EndRefused(JobEngine& engine, retrain::v1::Job& job, retrain::v1::RequestRefusal refusal) {
  job.set_request_checked(true);
  job.set_error_code(refusal.code());
  engine.EndJob(job, retrain::v1::JOB_STATE_FAILED, refusal.message());
}

bool IsRequestCheck(const retrain::v1::Task& task) {
  return task.has_check_build() || task.has_check_verify() || task.has_check_training();
}

const JobKind* FindJobKind(retrain::v1::JobType type) {
  static const std::map<retrain::v1::JobType, const JobKind*> kinds = {
      {retrain::v1::JOB_TYPE_DATASET_BUILD, &DatasetBuildKind()},
      {retrain::v1::JOB_TYPE_DATASET_VERIFY, &DatasetVerifyKind()},
      {retrain::v1::JOB_TYPE_TRAINING, &TrainingKind()},
      {retrain::v1::JOB_TYPE_EVALUATION, &EvaluationKind()},
  };
  auto it = kinds.find(type);
  return it == kinds.end() ? nullptr : it->second;
}

}  // namespace retrain::server
