#include "trainer/input/shuffle_buffer.h"

#include <cassert>
#include <utility>

#include "trainer/input/random.h"

namespace retrain::trainer {

ShuffleBuffer::ShuffleBuffer(ShuffleBufferSize size, uint64_t seed, uint64_t stream)
    : size_(size), seed_(seed), stream_(stream) {
  records_.reserve(static_cast<size_t>(size_.capacity));
}

void ShuffleBuffer::Push(Record record) {
  assert(!full());
  records_.push_back(std::move(record));
}

Record ShuffleBuffer::Pop() {
  assert(!records_.empty());
  Rng rng(StreamSeed(seed_, RandomPurpose::kShufflePick, stream_, static_cast<uint64_t>(pops_)));
  const size_t pick = static_cast<size_t>(rng.Uniform(records_.size()));
  ++pops_;
  if (pick != records_.size() - 1) std::swap(records_[pick], records_.back());
  Record out = std::move(records_.back());
  records_.pop_back();
  return out;
}

std::vector<RecordId> ShuffleBuffer::ids() const {
  std::vector<RecordId> out;
  out.reserve(records_.size());
  for (const auto& r : records_) out.push_back(r.id);
  return out;
}

}  // namespace retrain::trainer
