#include "worker/shard_check.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "worker/image/image_format.h"
#include "worker/image/image_probe.h"
#include "worker/ordered_parallel.h"

namespace retrain::worker {

void CheckRecords(size_t size, size_t first, const char* noun,
                  const std::function<std::string(size_t)>& check,
                  const std::function<int64_t(size_t)>& offset, const RunContext& context,
                  const std::string& file, DamageList& damage,
                  retrain::v1::VerifyShardResult& result) {
  const auto cancelled = [&] { return context.cancelled != nullptr && context.cancelled->load(); };
  const std::function<bool(size_t, std::string &&)> report = [&](size_t i, std::string&& problem) {
    const size_t n = first + i;
    if (!problem.empty()) damage.Add(file, offset(i), absl::StrCat(noun, " ", n, ": ", problem));
    result.set_records(static_cast<int64_t>(n) + 1);
    if (context.progress && (n + 1) % kVerifyProgressEvery == 0) {
      context.progress(static_cast<int64_t>(n) + 1, offset(i));
    }
    return !cancelled();
  };
  RunOrdered<std::string>(size, context.threads, 4 * context.threads + 4, check, report);
}

bool HashFrom(const std::string& path, int64_t offset, Sha256& hash) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  bool ok = std::fseek(f, offset, SEEK_SET) == 0;
  std::string buffer(1 << 20, '\0');
  size_t got;
  while (ok && (got = std::fread(buffer.data(), 1, buffer.size(), f)) > 0) {
    hash.Update(std::string_view(buffer.data(), got));
  }
  ok = ok && std::ferror(f) == 0;
  std::fclose(f);
  return ok;
}

std::string CheckRecordJpeg(std::string_view jpeg, int64_t height, int64_t width) {
  image::ProbeOptions options;
  options.max_pixels = height * width;  // what the record claims, and no more
  const image::ProbeOutcome probe = image::ProbeImage(jpeg, options);
  if (!probe.ok) return absl::StrCat("its JPEG is damaged: ", probe.detail);
  if (probe.info.format != image::ImageFormat::kJpeg || !probe.info.passthrough) {
    return absl::StrCat("its image is not a baseline RGB JPEG (",
                        probe.info.conversion.empty() ? "not a JPEG" : probe.info.conversion, ")");
  }
  if (probe.info.height != height || probe.info.width != width) {
    return absl::StrCat("its JPEG is ", probe.info.width, "x", probe.info.height,
                        " but the record says ", width, "x", height);
  }
  return "";
}

}  // namespace retrain::worker
