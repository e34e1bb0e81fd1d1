// Verifying one shard of a built dataset against its manifest: everything a
// reader relies on, read back from the disk. No RPC here.
#pragma once

#include "absl/status/statusor.h"
#include "retrain/v1/worker.pb.h"
#include "worker/task_runner.h"

namespace retrain::worker {

// Re-reads the shard and its index as the task's manifest entry describes
// them: the file's size and SHA-256, every record's TFRecord framing and
// CRC-32C, the record count, each record's tf.Example (its JPEG's header
// and entropy-coded data, fully decoded by libjpeg-turbo; height and width
// as the JPEG says; the label below num_classes; the fixed features), and
// each index entry's offset and size. A WebDataset shard is read as
// verify_webdataset.h says. A damaged or missing file is a
// result (each problem with the file and byte offset), not an error; the
// status is CANCELLED only when `context.cancelled` was set.
absl::StatusOr<retrain::v1::VerifyShardResult> RunVerifyShardTask(
    const retrain::v1::VerifyShardTask& task, const RunContext& context);

// Runs a CheckVerifyTask: the data directory confined to the data roots on
// this host (PERMISSION_DENIED) and its manifest read (FAILED_PRECONDITION
// when missing, unreadable or listing no shard), each refusal the result's
// `refusal`; otherwise a verify task for each shard.
retrain::v1::CheckVerifyResult RunCheckVerifyTask(const retrain::v1::CheckVerifyTask& task);

}  // namespace retrain::worker
