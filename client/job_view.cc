#include "client/job_view.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/job_states.h"
#include "trainer/spec/training_knobs.h"

namespace retrain::client {

namespace v1 = retrain::v1;
using google::protobuf::util::TimeUtil;

namespace {

constexpr int kListLimit = 20;

std::string Duration(double seconds) {
  if (seconds < 0) seconds = 0;
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return absl::StrFormat("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  return absl::StrFormat("%d:%02d", s / 60, s % 60);
}

std::string Bytes(int64_t n) {
  if (n >= 1'000'000'000) return absl::StrFormat("%.2f GB", n / 1e9);
  if (n >= 1'000'000) return absl::StrFormat("%.1f MB", n / 1e6);
  if (n >= 1'000) return absl::StrFormat("%.1f kB", n / 1e3);
  return absl::StrCat(n, " B");
}

std::string TypeName(v1::JobType t) { return EnumLabel(v1::JobType_Name(t), "JOB_TYPE_"); }

std::string ReasonName(v1::SkipReason r) {
  return EnumLabel(v1::SkipReason_Name(r), "SKIP_REASON_");
}

double Elapsed(const v1::Job& job) {
  const auto end = job.has_end_time() ? job.end_time() : job.update_time();
  return (TimeUtil::TimestampToMilliseconds(end) -
          TimeUtil::TimestampToMilliseconds(job.create_time())) /
         1000.0;
}

void AppendShards(std::string* out, const v1::SplitResult& split) {
  for (const auto& s : split.shards()) {
    absl::StrAppendFormat(out, "  %-28s %8d records  %10s  sha256 %s\n", s.file(),
                          s.num_records(), Bytes(s.num_bytes()), s.sha256().substr(0, 16));
  }
}

}  // namespace

std::string ProgressLine(const v1::Job& job, int width) {
  const auto& p = job.progress();
  if (job.type() == v1::JOB_TYPE_TRAINING || job.type() == v1::JOB_TYPE_EVALUATION) {
    // Queued jobs say why in their phase.
    if (p.max_steps() <= 0) return p.phase();
    const double frac = std::min(1.0, static_cast<double>(p.step()) / p.max_steps());
    const int filled = static_cast<int>(frac * width);
    std::string line = absl::StrFormat(
        "%-10s [%s] %3d%%  step %d/%d  epoch %.2f  loss %.4f  lr %.4g  %.0f ex/s", p.phase(),
        std::string(filled, '#') + std::string(width - filled, '.'), static_cast<int>(frac * 100),
        p.step(), p.max_steps(), p.epoch(), p.loss(), p.learning_rate(), p.examples_per_sec());
    if (p.eta_seconds() > 0) absl::StrAppend(&line, "  ETA ", Duration(p.eta_seconds()));
    if (p.precision_at_1() > 0) absl::StrAppendFormat(&line, "  top-1 %.4f", p.precision_at_1());
    return line;
  }
  const double frac = p.total() > 0 ? std::min(1.0, static_cast<double>(p.done()) / p.total()) : 0;
  const int filled = static_cast<int>(frac * width);
  std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
  std::string line = absl::StrFormat("%-14s [%s] %3d%%  %d/%d %s", p.phase(), bar,
                                     static_cast<int>(frac * 100), p.done(), p.total(), p.unit());
  if (p.unit() == "directories") absl::StrAppend(&line, ", ", p.found(), " files found");
  if (p.rate() > 0) absl::StrAppendFormat(&line, "  %.0f/s", p.rate());
  if (p.eta_seconds() > 0) absl::StrAppend(&line, "  ETA ", Duration(p.eta_seconds()));
  if (p.skipped() > 0) absl::StrAppend(&line, "  skipped ", p.skipped());
  return line;
}

namespace {

// What a dataset verification checked and found.
void AppendVerifyResult(std::string* out, const v1::DatasetVerifyResult& r) {
  absl::StrAppendFormat(out, "checked: %d shards, %d records, %s: %s\n", r.shards_checked(),
                        r.records_checked(), Bytes(r.bytes_checked()),
                        r.intact() ? "intact" : absl::StrCat(r.damaged_shards_size(),
                                                             " shard(s) damaged"));
  if (r.damage_size() > 0) absl::StrAppend(out, "damage:\n");
  for (const auto& d : r.damage()) {
    if (d.offset() >= 0) {
      absl::StrAppendFormat(out, "  %s at offset %d: %s\n", d.file(), d.offset(), d.problem());
    } else {
      absl::StrAppendFormat(out, "  %s: %s\n", d.file(), d.problem());
    }
  }
}

}  // namespace

std::string JobSummary(const v1::Job& job) {
  std::string out = absl::StrFormat("job %s (%s): %s after %s\n", job.id(), TypeName(job.type()),
                                    StateName(job.state()), Duration(Elapsed(job)));
  if (!job.error().empty()) absl::StrAppend(&out, "error: ", job.error(), "\n");
  if (!IsFinalState(job.state())) absl::StrAppend(&out, ProgressLine(job), "\n");
  if (job.has_training()) {
    absl::StrAppendFormat(&out, "model %s, batch %d, data %s, train_dir %s\n",
                          job.training().model(),
                          job.training().has_batch_size() ? job.training().batch_size()
                                                          : trainer::spec::kDefaultBatchSize,
                          job.training().data_dir(), job.training().train_dir());
  }
  if (job.has_training_result()) {
    const auto& r = job.training_result();
    absl::StrAppendFormat(&out, "trained %d steps, final loss %.4f, %d restart(s)\ncheckpoint: %s\n",
                          r.steps(), r.final_loss(), r.restarts(), r.final_checkpoint());
  }
  const v1::EvaluationResult* eval = job.has_training_result() && job.training_result().has_evaluation()
                                         ? &job.training_result().evaluation()
                                     : job.has_evaluation_result() ? &job.evaluation_result()
                                                                   : nullptr;
  if (eval != nullptr) {
    absl::StrAppendFormat(&out, "evaluation: precision @ 1 = %.4f, @ 5 = %.4f on %d examples\n",
                          eval->precision_at_1(), eval->precision_at_5(), eval->num_examples());
  }
  if (job.has_dataset_verify()) {
    absl::StrAppend(&out, "dataset: ", job.dataset_verify().data_dir(), "\n");
  }
  if (job.has_dataset_verify_result()) AppendVerifyResult(&out, job.dataset_verify_result());
  if (job.has_dataset_build_result()) {
    const auto& r = job.dataset_build_result();
    absl::StrAppendFormat(&out, "output: %s\nmanifest: %s\n", r.output_directory(), r.manifest());
    absl::StrAppendFormat(&out, "records: %d train, %d validation (%d + %d re-encoded as JPEG)\n",
                          r.train().num_records(), r.validation().num_records(),
                          r.train().num_converted(), r.validation().num_converted());
    absl::StrAppend(&out, "shards:\n");
    AppendShards(&out, r.train());
    AppendShards(&out, r.validation());
    absl::StrAppendFormat(&out, "records per class:\n  %5s  %-24s %10s %10s\n", "label", "name",
                          "train", "validation");
    for (int i = 0; i < r.labels_size(); ++i) {
      const int64_t t = i < r.train().class_counts_size() ? r.train().class_counts(i).count() : 0;
      const int64_t v =
          i < r.validation().class_counts_size() ? r.validation().class_counts(i).count() : 0;
      absl::StrAppendFormat(&out, "  %5d  %-24s %10d %10d\n", r.labels(i).id(),
                            r.labels(i).name(), t, v);
    }
    const int64_t skipped = std::max<int64_t>(r.num_skipped(), r.skipped_size());
    absl::StrAppendFormat(&out, "skipped files: %d\n", skipped);
    for (int i = 0; i < std::min(r.skipped_size(), kListLimit); ++i) {
      const auto& s = r.skipped(i);
      absl::StrAppendFormat(&out, "  %s/%s: %s (%s)\n", s.split(), s.path(), ReasonName(s.reason()),
                            s.detail());
    }
    if (skipped > kListLimit) {
      absl::StrAppendFormat(&out, "  ... %d more in %s\n", skipped - kListLimit,
                            r.skipped_file().empty()
                                ? std::string("the manifest")
                                : r.output_directory() + "/" + r.skipped_file());
    }
    const int64_t duplicates = std::max<int64_t>(r.num_duplicate_groups(), r.duplicates_size());
    if (duplicates > 0) {
      absl::StrAppendFormat(&out, "identical files (kept, one record each): %d sets\n",
                            duplicates);
      for (int i = 0; i < std::min(r.duplicates_size(), kListLimit); ++i) {
        std::string set;
        for (const auto& p : r.duplicates(i).paths()) absl::StrAppend(&set, set.empty() ? "" : " = ", p);
        absl::StrAppend(&out, "  ", set, "\n");
      }
    }
  }
  return out;
}

std::string JobRow(const v1::Job& job) {
  std::string progress;
  if (!IsFinalState(job.state()) && job.progress().total() > 0) {
    progress = absl::StrFormat("%s %d/%d", job.progress().phase(), job.progress().done(),
                               job.progress().total());
  } else if (!job.error().empty()) {
    progress = job.error().substr(0, 60);
  }
  return absl::StrFormat("%-10s %-14s %-10s %8s  %s", job.id(), TypeName(job.type()),
                         StateName(job.state()), Duration(Elapsed(job)), progress);
}

std::string PointRow(const v1::TrainingPoint& p) {
  switch (p.kind()) {
    case v1::TrainingPoint::KIND_STEP:
      return absl::StrFormat("step %6d  loss %.4f  lr %.6g  %.1f examples/s  epoch %.2f", p.step(),
                             p.loss(), p.learning_rate(), p.examples_per_sec(), p.epoch());
    case v1::TrainingPoint::KIND_CHECKPOINT:
      return absl::StrFormat("checkpoint at step %d: %s", p.step(), p.checkpoint());
    case v1::TrainingPoint::KIND_EVAL:
      return absl::StrFormat(
          "eval at step %d: precision @ 1 = %.4f, @ 5 = %.4f on %d examples (%s)", p.step(),
          p.precision_at_1(), p.precision_at_5(), p.num_examples(), p.checkpoint());
    default:
      return absl::StrFormat("point of an unknown kind at step %d", p.step());
  }
}

std::string WorkerRow(const v1::Worker& w) {
  std::string tasks;
  for (int64_t t : w.task_ids()) absl::StrAppend(&tasks, tasks.empty() ? "" : ",", t);
  return absl::StrFormat(
      "%-6s %-6s %-20s pid %-8d %3d cores %3d threads %8s  tasks %s", w.id(),
      EnumLabel(v1::WorkerState_Name(w.state()), "WORKER_STATE_"),
      w.hostname(), w.pid(), w.resources().cpu_cores(), w.resources().threads(),
      Bytes(w.resources().memory_bytes()), tasks.empty() ? "-" : tasks);
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

std::string ErrorJson(const std::string& code, const std::string& message, int exit_code) {
  const nlohmann::json j = {{"error", {{"code", code}, {"message", message}}},
                            {"exit_code", exit_code}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace retrain::client
