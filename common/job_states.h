// Facts about job states shared by the coordinator and its clients.
#pragma once

#include <algorithm>
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

// An enum value's name in lower case without its prefix, for metric labels
// and the CLI: EnumLabel(JobType_Name(t), "JOB_TYPE_") is "dataset_build".
inline std::string EnumLabel(const std::string& name, const std::string& prefix) {
  std::string out = name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
  std::transform(out.begin(), out.end(), out.begin(), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return out;
}

}  // namespace retrain
