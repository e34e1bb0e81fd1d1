// A dataset build's workspace: the hidden directory in its output directory
// (dataset::kBuildWorkspaceDirectory) where its tasks leave what the next
// phase reads, so that neither the coordinator's memory nor its database
// holds anything per file:
//
//   list/<split>-<label>-<chunk>.names  a label directory's file names, in
//                                       chunks of files_per_chunk (FileNames)
//   list/<split>-<label>.refused        entries refused while listing
//                                       (SkippedFiles)
//   shards/<shard file name>.entries    a shard's entries (ShardEntries)
//   shards/<shard file name>.written    what its shard task wrote, with
//                                       each entry's content hash
//                                       (ShardResult)
//   skipped.jsonl                       the files refused while listing,
//                                       moved beside the manifest (with
//                                       those the shard tasks skipped) when
//                                       the build finalizes
//
// <label> is the label's index in the build. Files are written whole under
// a temporary name and renamed into place without fsync: a worker killed
// mid-write leaves nothing, and a power loss at worst a file that fails to
// parse, reported as DATA_LOSS naming it. The coordinator only names the
// directory (dataset::BuildWorkspaceDirectory); the workers read and write
// it.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message_lite.h"

namespace retrain::worker {

std::string ListChunkFile(const std::string& workspace, const std::string& split, int label,
                          int chunk);
std::string RefusedFile(const std::string& workspace, const std::string& split, int label);
std::string ShardEntriesFile(const std::string& workspace, const std::string& shard_file);
std::string ShardWrittenFile(const std::string& workspace, const std::string& shard_file);

// Chunks of `files_per_chunk` that hold `files` names.
int ChunkCount(int64_t files, int files_per_chunk);

// Writes `message` to `path` (creating its directory) as described above.
absl::Status WriteWorkspaceFile(const std::string& path,
                                const google::protobuf::MessageLite& message);
// Reads `path` into `message`: NOT_FOUND when it is missing, DATA_LOSS when
// it does not parse.
absl::Status ReadWorkspaceFile(const std::string& path, google::protobuf::MessageLite* message);

}  // namespace retrain::worker
