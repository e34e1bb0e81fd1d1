#include "server/jobs/dataset_verify.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace retrain::server {

namespace v1 = retrain::v1;

namespace {

// Shards named in the job's failure reason; the result lists them all.
constexpr size_t kShardsNamed = 3;

// The check task is done: the job fails with its refusal, or a verify task
// for each shard runs.
void VerifyTheShards(JobEngine& engine, v1::Job& job, const v1::CheckVerifyResult& checked) {
  if (EndIfRefused(engine, job, checked)) return;
  job.set_request_checked(true);
  int64_t records = 0;
  std::vector<v1::Task> tasks;
  for (const v1::VerifyShardTask& shard : checked.shards()) {
    *tasks.emplace_back().mutable_verify_shard() = shard;
    records += shard.num_records();
  }
  const std::string reason =
      absl::StrCat("request checked: ", tasks.size(), " shards, ", records, " records");
  engine.ReplaceTasks(job, std::move(tasks), reason);
}

class DatasetVerify : public JobKind {
 public:
  v1::JobType type() const override { return v1::JOB_TYPE_DATASET_VERIFY; }
  std::string RunningPhase(const v1::BuildPlan&, const v1::Task* task) const override {
    return task != nullptr && task->has_check_verify() ? kCheckingPhase : "verifying";
  }
  int64_t TaskBytes(const v1::TaskResult& result) const override {
    return result.verify_shard().bytes();
  }
  int64_t TaskUnits(const v1::Task& task) const override {
    return task.verify_shard().num_records();
  }
  std::string ProgressUnit(const v1::BuildPlan&) const override { return "records"; }

  void TaskDone(JobEngine& engine, v1::Job& job, const v1::TaskRecord& done) const override {
    if (done.result().has_check_verify()) {
      VerifyTheShards(engine, job, done.result().check_verify());
      return;
    }
    if (!engine.AllTasksDone(job)) return;  // others still run
    const std::vector<const v1::TaskRecord*> tasks = engine.TasksOf(job);
    v1::DatasetVerifyResult& result = *job.mutable_dataset_verify_result();
    result.Clear();
    for (const v1::TaskRecord* t : tasks) {
      const v1::VerifyShardResult& shard = t->result().verify_shard();
      result.set_shards_checked(result.shards_checked() + 1);
      result.set_records_checked(result.records_checked() + shard.records());
      result.set_bytes_checked(result.bytes_checked() + shard.bytes());
      if (shard.damage_size() > 0) result.add_damaged_shards(shard.file());
      for (const auto& d : shard.damage()) *result.add_damage() = d;
    }
    result.set_intact(result.damaged_shards().empty());
    if (result.intact()) {
      engine.EndJob(job, v1::JOB_STATE_SUCCEEDED,
                    absl::StrCat("intact: ", result.shards_checked(), " shards, ",
                                 result.records_checked(), " records as the manifest says"));
      return;
    }
    std::vector<std::string> named(result.damaged_shards().begin(),
                                   result.damaged_shards().end());
    if (named.size() > kShardsNamed) {
      named.resize(kShardsNamed);
      named.push_back(absl::StrCat("and ", result.damaged_shards_size() - kShardsNamed, " more"));
    }
    engine.EndJob(job, v1::JOB_STATE_FAILED,
                  absl::StrCat("damaged: ", result.damaged_shards_size(), " of ",
                               result.shards_checked(), " shards (", absl::StrJoin(named, ", "),
                               "); rebuild the dataset or restore those files (retrain status ",
                               job.id(), " lists every problem)"));
  }
};

}  // namespace

const JobKind& DatasetVerifyKind() {
  static const DatasetVerify kind;
  return kind;
}

absl::StatusOr<PlannedJob> PlanDatasetVerify(const v1::DatasetVerifySpec& spec,
                                             const DataRoots& roots) {
  ASSIGN_OR_RETURN(const std::string data_dir, roots.Resolve("spec.data_dir", spec.data_dir()));
  PlannedJob planned;
  planned.job.set_type(v1::JOB_TYPE_DATASET_VERIFY);
  planned.job.mutable_dataset_verify()->set_data_dir(data_dir);
  v1::CheckVerifyTask& check = *planned.tasks.emplace_back().mutable_check_verify();
  *check.mutable_spec() = planned.job.dataset_verify();
  for (const auto& root : roots.roots()) check.add_data_roots(root);
  planned.reason = "dataset verification submitted; a worker reads its manifest";
  return planned;
}

}  // namespace retrain::server
