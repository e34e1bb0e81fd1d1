#include "trainer/input/shuffle_buffer.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace retrain::trainer {
namespace {

TEST(ShuffleBufferTest, SizesAreTheReferenceFormula) {
  // image_processing.py: min_after_dequeue = 1024 * factor,
  // capacity = min_after_dequeue + 3 * batch_size.
  auto s = ReferenceShuffleBufferSize(16, 32);
  EXPECT_EQ(s.min_after_dequeue, 16384);
  EXPECT_EQ(s.capacity, 16384 + 96);
  s = ReferenceShuffleBufferSize(1, 64);
  EXPECT_EQ(s.min_after_dequeue, 1024);
  EXPECT_EQ(s.capacity, 1024 + 192);
  s = ReferenceShuffleBufferSize(0, 8);
  EXPECT_EQ(s.min_after_dequeue, 0);
  EXPECT_EQ(s.capacity, 24);
}

Record Make(int i) {
  Record r;
  r.id = {i / 1000, i % 1000};
  r.data = std::to_string(i);
  return r;
}

// Drives a buffer as the pipeline does over records 0..n-1: fill to
// capacity, pop one, repeat; drain at the end.
std::vector<int> Drive(ShuffleBuffer* buffer, int n, int first = 0,
                       std::vector<int>* pops_at = nullptr) {
  std::vector<int> out;
  int next = first;
  for (;;) {
    while (!buffer->full() && next < n) buffer->Push(Make(next++));
    const bool ended = next >= n;
    if (!buffer->CanPop(ended)) break;
    if (pops_at != nullptr) pops_at->push_back(static_cast<int>(buffer->size()));
    out.push_back(std::stoi(buffer->Pop().data));
  }
  return out;
}

TEST(ShuffleBufferTest, DeterministicAndEveryRecordOnce) {
  const auto size = ReferenceShuffleBufferSize(1, 8);  // 1048 records
  const int n = 5000;
  ShuffleBuffer a(size, 42), b(size, 42), c(size, 43);
  std::vector<int> sizes;
  const auto oa = Drive(&a, n, 0, &sizes);
  const auto ob = Drive(&b, n);
  const auto oc = Drive(&c, n);
  EXPECT_EQ(oa, ob);
  EXPECT_NE(oa, oc);
  ASSERT_EQ(oa.size(), static_cast<size_t>(n));
  EXPECT_EQ(std::set<int>(oa.begin(), oa.end()).size(), static_cast<size_t>(n));
  // Every pop but the final drain sees a full buffer, so at least
  // min_after_dequeue + 1 records.
  for (int i = 0; i < n - size.capacity; ++i) ASSERT_EQ(sizes[i], size.capacity) << i;
  EXPECT_EQ(sizes.back(), 1);
  // It does shuffle: the first record out is rarely the first in, and
  // records travel far.
  int displaced = 0;
  for (int i = 0; i < n; ++i) displaced += std::abs(oa[i] - i) > 50;
  EXPECT_GT(displaced, n / 2);
}

TEST(ShuffleBufferTest, NoPopBeforeMinAfterDequeue) {
  ShuffleBuffer buffer({10, 6}, 1);
  for (int i = 0; i < 6; ++i) {
    EXPECT_FALSE(buffer.CanPop(false));
    buffer.Push(Make(i));
  }
  EXPECT_FALSE(buffer.CanPop(false));
  buffer.Push(Make(6));
  EXPECT_TRUE(buffer.CanPop(false));
  ShuffleBuffer small({10, 6}, 1);
  small.Push(Make(0));
  EXPECT_TRUE(small.CanPop(true));  // the end drains what is left
}

TEST(ShuffleBufferTest, RestoredFromIdsAndPopsContinuesIdentically) {
  const ShuffleBufferSize size{100, 90};
  const int n = 1000;
  ShuffleBuffer a(size, 9, /*stream=*/3);
  std::vector<int> first, rest;
  int next = 0;
  while (first.size() < 300) {
    while (!a.full()) a.Push(Make(next++));
    first.push_back(std::stoi(a.Pop().data));
  }
  const auto ids = a.ids();
  const int64_t pops = a.pops();
  const int resume_next = next;
  rest = Drive(&a, n, next);

  ShuffleBuffer b(size, 9, 3);
  for (const auto& id : ids) b.Push(Make(id.shard * 1000 + id.index));
  b.set_pops(pops);
  EXPECT_EQ(Drive(&b, n, resume_next), rest);

  ShuffleBuffer other_stream(size, 9, 4);
  for (const auto& id : ids) other_stream.Push(Make(id.shard * 1000 + id.index));
  other_stream.set_pops(pops);
  EXPECT_NE(Drive(&other_stream, n, resume_next), rest);
}

}  // namespace
}  // namespace retrain::trainer
