// How the trainer's process allocates host memory.
#pragma once

namespace retrain::trainer {

// Makes glibc's malloc keep freed memory for reuse instead of handing it
// back to the kernel: blocks up to 32 MiB (glibc's ceiling) come from the
// heap rather than from mmap(), and the heap's free top is never trimmed.
// Every training step frees and allocates the same activations and
// gradients; with glibc's defaults each step maps them anew, and the page
// faults took about three quarters of a CPU step of the `small` model
// (perf; 388 -> 1,568 examples/s on one thread). The price: the process
// keeps its peak heap until it exits. Call once, first thing in main();
// a no-op where the C library is not glibc.
void KeepFreedMemoryForReuse();

}  // namespace retrain::trainer
