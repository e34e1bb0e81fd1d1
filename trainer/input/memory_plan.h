// The input pipeline's host-memory plan (trainer/spec/memory_plan.h) for
// InputPipeline::Options, as the trainer asks for it.
#pragma once

#include "trainer/input/dataset_manifest.h"
#include "trainer/input/input_pipeline.h"
#include "trainer/spec/memory_plan.h"

namespace retrain::trainer {

// The plan for `options` on `manifest`. Throws TrainerError(kData) when
// options.split is not in the manifest.
MemoryPlan PlanInputMemory(const InputPipeline::Options& options, const DatasetManifest& manifest);

}  // namespace retrain::trainer
