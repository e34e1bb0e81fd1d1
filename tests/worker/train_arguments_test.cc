// The training spec is the one list of the trainer's knobs the service
// passes on: every TrainingSpec field reaches retrain-trainer as its flag,
// and the trainer declares every flag the worker passes.
#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "retrain/v1/training.pb.h"
#include "worker/trainer_task.h"

#ifdef RETRAIN_TRAINER_BINARY
#include "tests/support/process.h"
#endif

namespace retrain::worker {
namespace {

using google::protobuf::FieldDescriptor;
namespace v1 = retrain::v1;

// A spec with every field set to a value no default has.
v1::TrainingSpec EveryFieldSet() {
  v1::TrainingSpec spec;
  const auto* r = spec.GetReflection();
  for (int i = 0; i < spec.GetDescriptor()->field_count(); ++i) {
    const FieldDescriptor* f = spec.GetDescriptor()->field(i);
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: r->SetInt32(&spec, f, 3); break;
      case FieldDescriptor::CPPTYPE_INT64: r->SetInt64(&spec, f, 7); break;
      case FieldDescriptor::CPPTYPE_UINT64: r->SetUInt64(&spec, f, 11); break;
      case FieldDescriptor::CPPTYPE_DOUBLE: r->SetDouble(&spec, f, 0.25); break;
      case FieldDescriptor::CPPTYPE_BOOL: r->SetBool(&spec, f, true); break;
      case FieldDescriptor::CPPTYPE_STRING: r->SetString(&spec, f, "v-" + f->name()); break;
      default: ADD_FAILURE() << f->name() << ": a field type the test does not set";
    }
  }
  return spec;
}

// The value after `--name`, or "" when the flag is bare; absent: "<none>".
std::string ValueOf(const std::vector<std::string>& args, const std::string& name) {
  auto it = std::find(args.begin(), args.end(), "--" + name);
  if (it == args.end()) return "<none>";
  ++it;
  return it == args.end() || it->rfind("--", 0) == 0 ? "" : *it;
}

TEST(TrainArgumentsTest, EverySpecFieldReachesTheTrainerAsItsFlag) {
  const v1::TrainingSpec spec = EveryFieldSet();
  const std::vector<std::string> args = TrainArguments(spec);
  ASSERT_EQ(args.front(), "train");
  for (int i = 0; i < spec.GetDescriptor()->field_count(); ++i) {
    const FieldDescriptor* f = spec.GetDescriptor()->field(i);
    if (f->name() == "num_workers") {
      EXPECT_EQ(ValueOf(args, f->name()), "<none>") << "the coordinator's, not the trainer's";
      continue;
    }
    const std::string expected = f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL     ? ""
                                 : f->cpp_type() == FieldDescriptor::CPPTYPE_STRING ? "v-" + f->name()
                                 : f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE ? "0.25"
                                 : f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64 ? "11"
                                 : f->cpp_type() == FieldDescriptor::CPPTYPE_INT64  ? "7"
                                                                                    : "3";
    EXPECT_EQ(ValueOf(args, f->name()), expected) << f->name();
  }
}

TEST(TrainArgumentsTest, UnsetFieldsAndTheTrainersDefaultsAreLeftOut) {
  v1::TrainingSpec spec;
  spec.set_data_dir("/d");
  spec.set_train_dir("/t");
  spec.set_num_gpus(0);
  spec.set_num_replicas(1);
  spec.set_batch_size(0);  // set, so passed on: the trainer refuses it and says why
  EXPECT_THAT(TrainArguments(spec), ::testing::ElementsAre("train", "--data_dir", "/d",
                                                           "--train_dir", "/t", "--batch_size",
                                                           "0"));
}

#ifdef RETRAIN_TRAINER_BINARY
TEST(TrainArgumentsTest, TheTrainerDeclaresEveryFlagTheWorkerPasses) {
  const retrain::testing::CommandResult help =
      retrain::testing::RunCommand({RETRAIN_TRAINER_BINARY, "train", "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.err;
  for (const std::string& arg : TrainArguments(EveryFieldSet())) {
    if (arg.rfind("--", 0) != 0) continue;
    EXPECT_THAT(help.out, ::testing::HasSubstr(arg + " ")) << "retrain-trainer train --help";
  }
}
#endif

}  // namespace
}  // namespace retrain::worker
