// RETRAIN_VECTOR_CLONES before a function definition compiles it twice on
// x86-64, for AVX2 and for the baseline (SSE2), and picks one when the
// program loads (GCC/Clang target_clones): the per-pixel loops run on 8
// floats at a time where the CPU allows, with no -march flag, so one binary
// still runs on any x86-64. Both versions give the same bits: neither uses
// FMA (AVX2 alone does not enable it, and these files build with
// -ffp-contract=off) nor reassociates, and min, max, +, -, *, / are exact
// IEEE operations in both.
#pragma once

// Sanitizer builds go without: their instrumentation runs in the clones'
// resolvers, which the dynamic loader calls before the sanitizer is set up.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer) || \
    __has_feature(memory_sanitizer)
#define RETRAIN_NO_VECTOR_CLONES
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define RETRAIN_NO_VECTOR_CLONES
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(RETRAIN_NO_VECTOR_CLONES)
#define RETRAIN_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define RETRAIN_VECTOR_CLONES
#endif
