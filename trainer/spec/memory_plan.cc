#include "trainer/spec/memory_plan.h"

#include <cmath>
#include <cstdio>

namespace retrain::trainer {

ShuffleBufferSize ReferenceShuffleBufferSize(int input_queue_memory_factor, int batch_size) {
  ShuffleBufferSize size;
  size.min_after_dequeue = 1024 * static_cast<int64_t>(input_queue_memory_factor);
  size.capacity = size.min_after_dequeue + 3 * static_cast<int64_t>(batch_size);
  return size;
}

std::string HumanBytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (std::fabs(bytes) >= 1024.0 && unit < 4) {
    bytes /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), unit == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[unit]);
  return buf;
}

bool PlanInputMemory(const InputMemoryOptions& o, const dataset::Manifest& manifest,
                     MemoryPlan* out, std::string* error) {
  const dataset::SplitInfo* found = manifest.FindSplit(o.split);
  if (found == nullptr) {
    *error = dataset::NoSplitError(manifest.data_dir, o.split);
    return false;
  }
  const dataset::SplitInfo& split = *found;
  const double record = split.mean_record_bytes();
  const double s = o.image_size;
  const int64_t batch = o.batch_size;
  MemoryPlan plan;

  int64_t capacity = 0;
  if (o.train && o.input_queue_memory_factor > 0) {
    capacity = ReferenceShuffleBufferSize(o.input_queue_memory_factor, o.batch_size).capacity;
  }
  plan.shuffle_buffer_bytes = static_cast<int64_t>(std::ceil(capacity * record));
  plan.in_flight_record_bytes =
      static_cast<int64_t>(std::ceil(o.prefetch_batches * batch * record));

  // Decoded crop: under 2s on its shorter side, up to 4/3 that on the other;
  // 8-bit RGB. Floats: the horizontally resized rows (up to the crop's rows
  // x s x 3; the image itself is written into its batch). The parsed example
  // copies the record once more.
  const double crop_rows = 2.0 * s * 4.0 / 3.0;
  const double per_thread = 3.0 * (2.0 * s) * crop_rows + 4.0 * 3.0 * s * crop_rows + 2.0 * record;
  plan.decode_buffer_bytes = static_cast<int64_t>(o.num_preprocess_threads * per_thread);

  // A batch holds float images, or under device_decode copies of the JPEGs.
  const double image_bytes = o.device_decode ? record : 3.0 * s * s * 4.0;
  plan.batch_bytes = static_cast<int64_t>((o.prefetch_batches + 1) * batch * image_bytes);

  const int64_t world = o.world_size > 0 ? o.world_size : 1;
  plan.bookkeeping_bytes = split.num_records * 16 + split.num_records / world * 8 +
                           (o.prefetch_batches + 1) * capacity * 8;

  plan.total_bytes = plan.shuffle_buffer_bytes + plan.in_flight_record_bytes +
                     plan.decode_buffer_bytes + plan.batch_bytes + plan.bookkeeping_bytes;

  std::string d = "input pipeline needs about " + HumanBytes(plan.total_bytes) +
                  " of host memory: shuffle buffer ";
  if (capacity > 0) {
    d += std::to_string(capacity) + " records x " + HumanBytes(record) + " = " +
         HumanBytes(plan.shuffle_buffer_bytes) + " (--input_queue_memory_factor " +
         std::to_string(o.input_queue_memory_factor) + "; lower it to shrink this)";
  } else {
    d += o.train ? "none (--input_queue_memory_factor 0)" : "none (evaluation)";
  }
  d += ", prefetched batches " + std::to_string(o.prefetch_batches + 1) + " x " +
       std::to_string(batch) + " x 3x" + std::to_string(o.image_size) + "x" +
       std::to_string(o.image_size) + " floats = " + HumanBytes(plan.batch_bytes) +
       " (--batch_size, --image_size), decode buffers " + std::to_string(o.num_preprocess_threads) +
       " threads x " + HumanBytes(per_thread) + " = " + HumanBytes(plan.decode_buffer_bytes) +
       " (--num_preprocess_threads), records in flight " + HumanBytes(plan.in_flight_record_bytes) +
       ", index " + HumanBytes(plan.bookkeeping_bytes);
  plan.description = std::move(d);
  *out = std::move(plan);
  return true;
}

}  // namespace retrain::trainer
