// Verifying one WebDataset shard (dataset/webdataset.h) against its manifest
// entry: the part of verify-dataset that reads tar shards.
#pragma once

#include "absl/status/status.h"
#include "retrain/v1/worker.pb.h"
#include "worker/shard_check.h"
#include "worker/task_runner.h"

namespace retrain::worker {

// Reads the shard at `path` from start to end: every member's header
// (checksum, ustar, a regular file), the samples' grouping (adjacent .jpg,
// .cls and .json members of one key), each sample's JPEG fully decoded
// (CheckRecordJpeg) at the size its .json gives, its .cls label below
// num_classes and equal to the .json's, the two zero blocks that end the
// archive, the file's SHA-256 and its sample count; then compares the index
// (DALI's WebDataset format) with the members read. Each problem goes to
// `damage` with the file and byte offset; past a damaged header nothing
// more of the shard can be read. Fills result.records; CANCELLED when the
// task was.
absl::Status VerifyWebDatasetShard(const retrain::v1::VerifyShardTask& task,
                                   const std::string& path, const RunContext& context,
                                   DamageList& damage, retrain::v1::VerifyShardResult& result);

// For a shard that is missing: what its index file shows.
void CheckMissingWebDatasetShardIndex(const retrain::v1::VerifyShardTask& task, DamageList& damage);

}  // namespace retrain::worker
