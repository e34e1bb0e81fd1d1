#include "server/jobs/job_kind.h"

#include <map>

#include "server/jobs/dataset_verify.h"
#include "server/jobs/training.h"

namespace retrain::server {

const JobKind* FindJobKind(retrain::v1::JobType type) {
  static const std::map<retrain::v1::JobType, const JobKind*> kinds = {
      {retrain::v1::JOB_TYPE_DATASET_VERIFY, &DatasetVerifyKind()},
      {retrain::v1::JOB_TYPE_TRAINING, &TrainingKind()},
      {retrain::v1::JOB_TYPE_EVALUATION, &EvaluationKind()},
  };
  auto it = kinds.find(type);
  return it == kinds.end() ? nullptr : it->second;
}

}  // namespace retrain::server
