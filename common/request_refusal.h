// A request refused after it was accepted (a worker's check of what the
// coordinator does not read): the job fails with it.
#pragma once

#include "absl/status/status.h"
#include "retrain/v1/worker.pb.h"

namespace retrain {

// The refusal a non-OK `status` stands for: its code and message.
retrain::v1::RequestRefusal RefusalOf(const absl::Status& status);

}  // namespace retrain
