// How the CLI shows jobs to people: progress lines and summaries.
#pragma once

#include <string>

#include "retrain/v1/job.pb.h"
#include "retrain/v1/worker.pb.h"

namespace retrain::client {

// One line of progress without a newline, e.g.
// "validating     [#######.............]  35%  3500/10000 files  812/s  ETA 0:08  skipped 2".
// `width` is the bar's width in characters.
std::string ProgressLine(const retrain::v1::Job& job, int width = 24);

// A job's state, history and result as a few readable lines.
std::string JobSummary(const retrain::v1::Job& job);

// One line per job: id, type, state, progress, age.
std::string JobRow(const retrain::v1::Job& job);

std::string WorkerRow(const retrain::v1::Worker& worker);

// One line per point of a training series, e.g.
// "step     10  loss 2.3012  lr 0.05  1013.2 examples/s  epoch 0.80",
// "checkpoint at step 20: /runs/a/model.ckpt-20",
// "eval at step 75: precision @ 1 = 0.9100, @ 5 = 1.0000 on 2000 examples (/runs/a/model.ckpt-75)".
std::string PointRow(const retrain::v1::TrainingPoint& point);

// The protobuf JSON mapping, field names as in the .proto files.
std::string ToJson(const google::protobuf::Message& message);

// A failed command with --output json, one line:
// {"error":{"code":"NOT_FOUND","message":"..."},"exit_code":1}.
std::string ErrorJson(const std::string& code, const std::string& message, int exit_code);

}  // namespace retrain::client
