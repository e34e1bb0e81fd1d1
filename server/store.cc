#include "server/store.h"

#include <cstdint>

namespace retrain::server {

int64_t JobSequence(const std::string& job_id) {
  if (job_id.size() < 3 || job_id.compare(0, 2, "j-") != 0) return -1;
  int64_t seq = 0;
  for (size_t i = 2; i < job_id.size(); ++i) {
    const char c = job_id[i];
    if (c < '0' || c > '9' || seq > (INT64_MAX - 9) / 10) return -1;
    seq = seq * 10 + (c - '0');
  }
  return seq;
}

}  // namespace retrain::server
