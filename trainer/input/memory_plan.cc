#include "trainer/input/memory_plan.h"

#include "trainer/trainer_error.h"

namespace retrain::trainer {

MemoryPlan PlanInputMemory(const InputPipeline::Options& options, const DatasetManifest& manifest) {
  MemoryPlan plan;
  std::string error;
  if (!PlanInputMemory(static_cast<const InputMemoryOptions&>(options), manifest, &plan, &error)) {
    throw TrainerError(TrainerError::Kind::kData, error);
  }
  return plan;
}

}  // namespace retrain::trainer
