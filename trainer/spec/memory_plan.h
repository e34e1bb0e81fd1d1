// How much host memory an input pipeline will hold, before it starts: the
// trainer prints the plan and refuses to start when it does not fit, and the
// coordinator admits a training job only to a worker with that much (those
// checks are the callers': this only gives the figures).
#pragma once

#include <cstdint>
#include <string>

#include "dataset/manifest.h"
#include "trainer/spec/training_knobs.h"

namespace retrain::trainer {

// The reference's shuffle-buffer sizes: min_after_dequeue = 1024 * factor
// and capacity = min_after_dequeue + 3 * batch_size (image_processing.py,
// --input_queue_memory_factor). The buffer holds encoded records, so its
// memory is about capacity * mean record size.
struct ShuffleBufferSize {
  int64_t capacity = 0;
  int64_t min_after_dequeue = 0;
};
ShuffleBufferSize ReferenceShuffleBufferSize(int input_queue_memory_factor, int batch_size);

// The input pipeline's settings that decide its memory, with the trainer's
// defaults (InputPipeline::Options adds the rest).
struct InputMemoryOptions {
  // "train" or "validation".
  std::string split = "train";
  // --batch_size: images per batch (per rank).
  int batch_size = spec::kDefaultBatchSize;
  // --image_size: images come out image_size x image_size.
  int image_size = 299;
  // --num_preprocess_threads: decode threads. No effect on the batches.
  int num_preprocess_threads = spec::kDefaultNumPreprocessThreads;
  // --input_queue_memory_factor: the shuffle buffer holds
  // 1024 * factor + 3 * batch_size encoded records; 0: no shuffle buffer
  // (records in reader order, shard order still shuffled per epoch).
  int input_queue_memory_factor = spec::kDefaultInputQueueMemoryFactor;
  // true: random crops and colours, shuffling, repeat forever;
  // false: one evaluation pass (central crop, shards in order).
  bool train = true;
  // This process's share of every epoch: each of world_size ranks gets a
  // disjoint, equal share.
  int world_size = 1;
  // Batches decoded ahead of the consumer (>= 1).
  int prefetch_batches = 2;
  // Leave the decoding to the consumer (a GPU): batches carry the JPEGs
  // instead of float images.
  bool device_decode = false;
};

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

// The plan for `options` on `manifest`. Exception-free: false, with an
// error naming the dataset and the split, when options.split is not in it.
bool PlanInputMemory(const InputMemoryOptions& options, const dataset::Manifest& manifest,
                     MemoryPlan* plan, std::string* error);

// "1.7 GiB", "108.0 KiB", "512 B".
std::string HumanBytes(double bytes);

}  // namespace retrain::trainer
