// How much host memory an input pipeline will hold, before it starts: the
// trainer prints the plan and refuses to start when it does not fit (that
// check is the caller's: this only gives the figures).
#pragma once

#include <cstdint>
#include <string>

#include "trainer/input/dataset_manifest.h"
#include "trainer/input/input_pipeline.h"

namespace retrain::trainer {

// Bytes, by what holds them. Estimates from the manifest's mean record size;
// the decode figure bounds the usual case (a crop decoded at a DCT scale
// keeps its shorter side under 2 x image_size).
struct MemoryPlan {
  // Encoded records in the shuffle buffer: capacity x mean record size
  // (0 for evaluation or input_queue_memory_factor 0).
  int64_t shuffle_buffer_bytes = 0;
  // Records handed to decoding and not yet decoded: prefetch x batch records.
  int64_t in_flight_record_bytes = 0;
  // Per decode thread: the decoded crop (8-bit RGB), the float resize
  // buffer and the parsed example; times num_preprocess_threads.
  int64_t decode_buffer_bytes = 0;
  // Finished batches: (prefetch_batches + 1, the one the caller holds) x
  // batch_size x 3 x image_size^2 x 4 bytes.
  int64_t batch_bytes = 0;
  // Record index and epoch order (about 24 bytes per record), and the
  // shuffle-buffer ids kept with each prefetched batch for resuming.
  int64_t bookkeeping_bytes = 0;
  int64_t total_bytes = 0;
  // One line for the log, naming the flag that moves each part, e.g.
  // "input pipeline needs about 1.9 GiB of host memory: shuffle buffer
  //  16480 records x 108.0 KiB = 1.7 GiB (--input_queue_memory_factor 16),
  //  ...".
  std::string description;
};

// The plan for `options` on `manifest` (options.split must be in it).
// Throws TrainerError(kData) when the split is missing.
MemoryPlan PlanInputMemory(const InputPipeline::Options& options, const DatasetManifest& manifest);

// "1.7 GiB", "108.0 KiB", "512 B".
std::string HumanBytes(double bytes);

}  // namespace retrain::trainer
