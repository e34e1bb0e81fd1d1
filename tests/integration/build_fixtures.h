// Inputs and checks shared by the tests that build datasets through the real
// service: a tree of photo-like images, the build request for it, and what
// every finished build must hold.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "retrain/v1/job_service.pb.h"
#include "tests/integration/dataset_check.h"
#include "tests/support/cluster.h"

namespace retrain::testing {

// What a test wrote: relative path ("train/cat/x.jpg") -> bytes.
using Tree = std::map<std::string, std::string>;

// Photo-like JPEGs with every fifth file a PNG, in
// root/data/{train,validation}/<label>/, plus root/data/labels.txt.
Tree WriteImages(const std::string& root, const std::vector<std::string>& labels, int train_each,
                 int validation_each, int width = 96, int height = 72);

// A build of root/data into `out`.
retrain::v1::SubmitDatasetBuildRequest BuildRequest(const std::string& root,
                                                    const std::string& out,
                                                    int train_shards = 3,
                                                    int validation_shards = 2);

// Submits the build (the test fails if the submit does).
retrain::v1::Job Submit(Cluster& cluster, const retrain::v1::SubmitDatasetBuildRequest& req);

// Waits until the build has written at least one shard, looking every
// 2 ms (writing a shard takes milliseconds); returns the job then.
retrain::v1::Job WaitUntilAShardIsWritten(Cluster& cluster, const std::string& job_id);

// Every file of `tree` that is expected in the dataset appears in exactly
// one record, with its label, and the records hold nothing else.
void ExpectEachImageOnce(const DatasetView& view, const Tree& tree,
                         const std::set<std::string>& left_out = {});

// Files under `dir` whose names start with a dot (temporaries, partial
// writes), at any depth.
std::vector<std::string> HiddenOrForeignFiles(const std::string& dir);

}  // namespace retrain::testing
