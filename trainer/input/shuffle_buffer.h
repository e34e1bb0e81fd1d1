// The shuffle buffer of encoded records (TensorFlow's RandomShuffleQueue in
// image_processing.py), made deterministic and resumable.
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/input/record_source.h"
#include "trainer/spec/memory_plan.h"

namespace retrain::trainer {

// ShuffleBufferSize and the reference's sizes, ReferenceShuffleBufferSize(),
// are in trainer/spec/memory_plan.h.

// Holds up to `capacity` records and hands them out in random order.
//
// Use: push until full() or the input ends, then Pop() one; repeat. So every
// pop but those at the end of a finite input picks among a full buffer
// (TensorFlow's queue is full in steady state, when its readers keep up), and
// the first pop comes only after the buffer holds capacity >= min_after_dequeue
// records. CanPop() says whether a pop is allowed: more than
// min_after_dequeue records, or the input has ended and any record is left
// (the end of a finite input drains the buffer).
//
// Pop number k picks uniformly among the buffered records with an RNG
// derived from (seed, stream, k), not from a running generator: the order is
// a function of the records pushed and of k alone, so a buffer restored from
// ids() and pops() continues exactly as the original would have.
//
// Not thread-safe.
class ShuffleBuffer {
 public:
  // `stream` separates ranks (each rank shuffles its own records).
  ShuffleBuffer(ShuffleBufferSize size, uint64_t seed, uint64_t stream = 0);

  bool full() const { return static_cast<int64_t>(records_.size()) >= size_.capacity; }
  bool empty() const { return records_.empty(); }
  int64_t size() const { return static_cast<int64_t>(records_.size()); }
  const ShuffleBufferSize& limits() const { return size_; }
  bool CanPop(bool input_ended) const {
    return size() > size_.min_after_dequeue || (input_ended && !records_.empty());
  }

  // Adds a record; the buffer must not be full.
  void Push(Record record);
  // Removes and returns a random record; the buffer must not be empty.
  Record Pop();

  // Pops so far (restored with set_pops on resume).
  int64_t pops() const { return pops_; }
  void set_pops(int64_t pops) { pops_ = pops; }
  // The buffered records' ids in buffer order: with pops() and the records
  // themselves, all a restart needs to rebuild this buffer.
  std::vector<RecordId> ids() const;
  void Clear() { records_.clear(); }

 private:
  const ShuffleBufferSize size_;
  const uint64_t seed_;
  const uint64_t stream_;
  std::vector<Record> records_;
  int64_t pops_ = 0;
};

}  // namespace retrain::trainer
