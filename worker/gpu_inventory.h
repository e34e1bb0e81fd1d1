// The GPUs of this machine, as the worker reports them to the coordinator:
// from `nvidia-smi` when it is installed (no CUDA needed in the worker),
// none otherwise.
#pragma once

#include <vector>

#include "retrain/v1/worker.pb.h"

namespace retrain::worker {

// Index, name, total and free memory of each GPU. Runs nvidia-smi (about
// 50 ms); callers cache the answer.
std::vector<retrain::v1::GpuInfo> DetectGpus();

}  // namespace retrain::worker
