// CRC-32C (Castagnoli), as TFRecord framing uses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace retrain {

// Extends `crc` (the CRC of earlier bytes, 0 to start) over `data`.
// Uses the SSE4.2 instruction where the CPU has it. Thread-safe.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);

inline uint32_t Crc32c(std::string_view data) {
  return Crc32cExtend(0, data.data(), data.size());
}

// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
inline uint32_t MaskCrc(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}
inline uint32_t UnmaskCrc(uint32_t masked) {
  uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace retrain
