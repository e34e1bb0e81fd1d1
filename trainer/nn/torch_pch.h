// Precompiled header of retrain_trainer_nn (see CMakeLists.txt): LibTorch's
// umbrella header, which dominates the build time of every file that uses it.
// Sources still include what they use; this file only speeds them up.
#pragma once

#include <torch/torch.h>
