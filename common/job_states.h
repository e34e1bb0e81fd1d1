// Facts about job states shared by the coordinator and its clients.
#pragma once

#include <string>

#include "retrain/v1/job.pb.h"

namespace retrain {

// SUCCEEDED, FAILED and CANCELLED never change again.
inline bool IsFinalState(retrain::v1::JobState s) {
  return s == retrain::v1::JOB_STATE_SUCCEEDED || s == retrain::v1::JOB_STATE_FAILED ||
         s == retrain::v1::JOB_STATE_CANCELLED;
}

// "RUNNING" for JOB_STATE_RUNNING.
inline std::string StateName(retrain::v1::JobState s) {
  return retrain::v1::JobState_Name(s).substr(sizeof("JOB_STATE_") - 1);
}

}  // namespace retrain
