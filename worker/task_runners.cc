#include "worker/task_runners.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/dataset_build.h"
#include "worker/build/check_task.h"
#include "worker/build/finalize_task.h"
#include "worker/build/listing.h"
#include "worker/build/plan_task.h"
#include "worker/training_check.h"
#include "worker/verify_task.h"

namespace retrain::worker {

namespace v1 = retrain::v1;

namespace {

// `threads` unless the task sets its own (> 0).
RunContext WithThreads(RunContext context, int threads) {
  if (threads > 0) context.threads = threads;
  return context;
}

// A runner of `Result` results, stored in the TaskResult's field `set`.
template <typename Result, typename Run, typename Set>
absl::StatusOr<v1::TaskResult> Wrap(Run run, Set set) {
  absl::StatusOr<Result> r = run();
  if (!r.ok()) return r.status();
  v1::TaskResult result;
  *(result.*set)() = *std::move(r);
  return result;
}

const std::map<v1::Task::KindCase, TaskRunner>& Runners() {
  static const auto* runners = new std::map<v1::Task::KindCase, TaskRunner>{
      {v1::Task::kShard,
       {[](const v1::Task& t) { return absl::StrCat("write ", t.shard().file_name()); },
        [](const v1::Task& t, const TaskEnvironment& env) {
          return Wrap<v1::ShardResult>(
              [&] { return RunShardTask(t.shard(), WithThreads(env.run, t.shard().num_threads())); },
              &v1::TaskResult::mutable_shard);
        }}},
      {v1::Task::kCheckBuild,
       {[](const v1::Task& t) {
          return absl::StrCat("check the build of ", t.check_build().spec().output_directory());
        },
        [](const v1::Task& t, const TaskEnvironment&) {
          return Wrap<v1::CheckBuildResult>([&] { return RunCheckBuildTask(t.check_build()); },
                                            &v1::TaskResult::mutable_check_build);
        }}},
      {v1::Task::kCheckVerify,
       {[](const v1::Task& t) {
          return absl::StrCat("check the verification of ", t.check_verify().spec().data_dir());
        },
        [](const v1::Task& t, const TaskEnvironment&) -> absl::StatusOr<v1::TaskResult> {
          v1::TaskResult result;
          *result.mutable_check_verify() = RunCheckVerifyTask(t.check_verify());
          return result;
        }}},
      {v1::Task::kCheckTraining,
       {[](const v1::Task& t) {
          const auto& c = t.check_training();
          return c.has_training()
                     ? absl::StrCat("check the training into ", c.training().train_dir())
                     : absl::StrCat("check the evaluation of ", c.evaluation().checkpoint_dir());
        },
        [](const v1::Task& t, const TaskEnvironment&) -> absl::StatusOr<v1::TaskResult> {
          v1::TaskResult result;
          *result.mutable_check_training() = RunCheckTrainingTask(t.check_training());
          return result;
        }}},
      {v1::Task::kList,
       {[](const v1::Task& t) {
          return absl::StrCat("list ", t.list().labels_size(), " label directories of ",
                              t.list().split());
        },
        [](const v1::Task& t, const TaskEnvironment&) {
          return Wrap<v1::ListResult>([&] { return RunListTask(t.list()); },
                                      &v1::TaskResult::mutable_list);
        }}},
      {v1::Task::kPlanShards,
       {[](const v1::Task&) { return std::string("plan the shards"); },
        [](const v1::Task& t, const TaskEnvironment&) {
          return Wrap<v1::PlanShardsResult>([&] { return RunPlanShardsTask(t.plan_shards()); },
                                            &v1::TaskResult::mutable_plan_shards);
        }}},
      {v1::Task::kFinalizeBuild,
       {[](const v1::Task& t) {
          return absl::StrCat("finalize ", t.finalize_build().job().dataset_build().output_directory());
        },
        [](const v1::Task& t, const TaskEnvironment&) {
          return Wrap<v1::FinalizeBuildResult>(
              [&] { return RunFinalizeBuildTask(t.finalize_build()); },
              &v1::TaskResult::mutable_finalize_build);
        }}},
      {v1::Task::kTrain,
       {[](const v1::Task& t) {
          return absl::StrCat("train ", t.train().spec().model(), " in ",
                              t.train().spec().train_dir());
        },
        [](const v1::Task& t, const TaskEnvironment& env) {
          TrainerContext trainer = env.trainer;
          if (t.train().stop_grace_secs() > 0)
            trainer.stop_grace_secs = t.train().stop_grace_secs();
          return Wrap<v1::TrainTaskResult>([&] { return RunTrainTask(t.train(), trainer); },
                                           &v1::TaskResult::mutable_train);
        }}},
      {v1::Task::kEval,
       {[](const v1::Task& t) {
          return absl::StrCat("evaluate ", t.eval().spec().checkpoint_dir());
        },
        [](const v1::Task& t, const TaskEnvironment& env) {
          return Wrap<v1::EvalTaskResult>([&] { return RunEvalTask(t.eval(), env.trainer); },
                                          &v1::TaskResult::mutable_eval);
        }}},
      {v1::Task::kVerifyShard,
       {[](const v1::Task& t) { return absl::StrCat("verify ", t.verify_shard().file()); },
        [](const v1::Task& t, const TaskEnvironment& env) {
          return Wrap<v1::VerifyShardResult>(
              [&] {
                return RunVerifyShardTask(t.verify_shard(),
                                          WithThreads(env.run, t.verify_shard().num_threads()));
              },
              &v1::TaskResult::mutable_verify_shard);
        }}},
  };
  return *runners;
}

}  // namespace

const TaskRunner* FindTaskRunner(v1::Task::KindCase kind) {
  auto it = Runners().find(kind);
  return it == Runners().end() ? nullptr : &it->second;
}

}  // namespace retrain::worker
