#include "trainer/host_allocator.h"

#include <cstddef>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace retrain::trainer {

void KeepFreedMemoryForReuse() {
#if defined(__GLIBC__)
  // glibc refuses thresholds above half its heap size (32 MiB on 64 bits).
  constexpr int kLargestHeapBlock = 32 << 20;
  mallopt(M_MMAP_THRESHOLD, kLargestHeapBlock);
  // The largest int: trimming never pays for itself in a training loop.
  mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
#endif
}

}  // namespace retrain::trainer
