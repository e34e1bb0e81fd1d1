// Checksums: SHA-256 for published shard checksums, XXH3-128 to recognise
// identical file contents cheaply.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace retrain {

// Incremental SHA-256. Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);
  // Lower-case hex digest; the object must not be used afterwards.
  std::string HexDigest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// 16-byte XXH3-128 digest of `data`, high half first.
std::string ContentHash(std::string_view data);

// Lower-case hex of arbitrary bytes.
std::string ToHex(std::string_view bytes);

}  // namespace retrain
