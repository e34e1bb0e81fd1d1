// Deterministic random numbers for the input pipeline.
//
// The same seed gives the same numbers with every compiler and standard
// library: <random>'s distributions are implementation-defined, so none is
// used here. Streams are derived by hashing (seed, purpose, ...) rather than
// by drawing from one shared generator, so that a record's augmentation, an
// epoch's shard order or a shuffle-buffer pick never depends on what another
// thread drew before it, and a resumed run can recompute any of them.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <utility>

namespace retrain::trainer {

// SplitMix64's finaliser: a bijective mix of 64 bits.
constexpr uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A hash of a few 64-bit words: the seed of an independent stream.
inline uint64_t HashWords(std::initializer_list<uint64_t> words) {
  uint64_t h = 0x6a09e667f3bcc908ull;
  for (uint64_t w : words) h = Mix64(h ^ Mix64(w));
  return h;
}

// What a stream is for; hashed in so that streams for different purposes
// with the same numbers never coincide.
enum class RandomPurpose : uint64_t {
  kShardOrder = 1,    // (seed, epoch)
  kShufflePick = 2,   // (seed, rank, pop number)
  kAugmentation = 3,  // (seed, rank, sequence number)
};

inline uint64_t StreamSeed(uint64_t seed, RandomPurpose purpose, uint64_t a, uint64_t b = 0) {
  return HashWords({seed, static_cast<uint64_t>(purpose), a, b});
}

// SplitMix64: small, fast, and good enough for augmentation and shuffling.
// Not thread-safe; copyable (a copy continues the same stream).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next64() {
    state_ += 0x9e3779b97f4a7c15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n) for n >= 1, exactly (Lemire's multiply with rejection).
  uint64_t Uniform(uint64_t n) {
    if (n <= 1) return 0;
    if (n <= 0xffffffffull) {
      const uint32_t n32 = static_cast<uint32_t>(n);
      uint64_t m = static_cast<uint64_t>(static_cast<uint32_t>(Next64() >> 32)) * n32;
      uint32_t low = static_cast<uint32_t>(m);
      if (low < n32) {
        const uint32_t threshold = static_cast<uint32_t>(-n32) % n32;
        while (low < threshold) {
          m = static_cast<uint64_t>(static_cast<uint32_t>(Next64() >> 32)) * n32;
          low = static_cast<uint32_t>(m);
        }
      }
      return m >> 32;
    }
    // Large n (not used by the pipeline's record counts in practice).
    const uint64_t limit = ~0ull - (~0ull % n);
    uint64_t x;
    do {
      x = Next64();
    } while (x >= limit);
    return x % n;
  }

  // Uniform in [0, 1), 24 random bits (like TensorFlow's RandFloat).
  float UniformFloat() { return static_cast<float>(Next64() >> 40) * (1.0f / 16777216.0f); }

  // Uniform in [lo, hi).
  float UniformFloat(float lo, float hi) { return lo + (hi - lo) * UniformFloat(); }

  bool Bernoulli() { return (Next64() >> 63) != 0; }

 private:
  uint64_t state_;
};

// Fisher-Yates shuffle with Rng (std::shuffle is implementation-defined).
template <typename T>
void DeterministicShuffle(T* begin, T* end, Rng* rng) {
  const auto n = static_cast<uint64_t>(end - begin);
  for (uint64_t i = n; i > 1; --i) {
    const uint64_t j = rng->Uniform(i);
    std::swap(begin[i - 1], begin[j]);
  }
}

}  // namespace retrain::trainer
