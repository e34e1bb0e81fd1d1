// The files a finished dataset build leaves beside its shards: dataset.json
// (the manifest readers and the trainer rely on) and labels.txt.
#pragma once

#include <string>

#include "dataset/manifest.h"
#include "retrain/v1/dataset.pb.h"
#include "retrain/v1/job.pb.h"

namespace retrain::worker {

// The manifest of a finished build (dataset/manifest.h): labels, splits with
// shards (file, records, bytes, sha256, index file), per-class counts,
// the first skipped files and duplicates with their counts and list files,
// the seed and every option used. `job` supplies
// the id and the (resolved) spec.
dataset::Manifest DatasetManifest(const retrain::v1::Job& job,
                                  const retrain::v1::DatasetBuildResult& result);
// dataset.json: ManifestJson(DatasetManifest(job, result)).
std::string DatasetManifestJson(const retrain::v1::Job& job,
                                const retrain::v1::DatasetBuildResult& result);

// SKIP_REASON_TOO_MANY_PIXELS -> "too_many_pixels", as the CLI and the
// manifest name it.
std::string SkipReasonName(retrain::v1::SkipReason reason);

// labels.txt: "<id>:<name>" per line (TF-Slim's label file format),
// including "0:background" when label 0 is the background class.
std::string LabelsText(const retrain::v1::DatasetBuildResult& result, bool background_class);

}  // namespace retrain::worker
