#include "client/training_flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace retrain::client {
namespace {

using ::testing::HasSubstr;

// Parses `args` (after the command's name) as `retrain train` would.
void Parse(CLI::App& app, std::vector<std::string> args) {
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  app.parse(args);
}

TEST(TrainingFlagsTest, EveryFieldOfTheSpecIsAFlagNamedAsTheField) {
  CLI::App app;
  const TrainingFlags flags(&app);
  const auto* descriptor = retrain::v1::TrainingSpec::descriptor();
  ASSERT_GT(descriptor->field_count(), 20);
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const std::string name = "--" + descriptor->field(i)->name();
    EXPECT_NE(app.get_option_no_throw(name), nullptr) << name << " is not a flag of retrain train";
  }
}

TEST(TrainingFlagsTest, SetsWhatIsGivenAndLeavesTheRestUnset) {
  CLI::App app;
  const TrainingFlags flags(&app);
  Parse(app, {"--data_dir", "d", "--train_dir", "t", "--batch_size", "64", "--num_epochs", "2.5",
              "--seed", "18446744073709551615", "--checkpoint_every_steps", "5000000000",
              "--fine_tune", "--precision", "bf16", "--pretrained_model_checkpoint_path", "w.st"});
  const auto spec = flags.Spec([](const std::string& p) { return "/abs/" + p; });
  EXPECT_EQ(spec.data_dir(), "/abs/d");
  EXPECT_EQ(spec.train_dir(), "/abs/t");
  EXPECT_EQ(spec.pretrained_model_checkpoint_path(), "/abs/w.st");
  EXPECT_EQ(spec.batch_size(), 64);
  EXPECT_DOUBLE_EQ(spec.num_epochs(), 2.5);
  EXPECT_EQ(spec.seed(), 18446744073709551615u);
  EXPECT_EQ(spec.checkpoint_every_steps(), 5000000000);
  EXPECT_TRUE(spec.fine_tune());
  EXPECT_EQ(spec.precision(), "bf16");
  EXPECT_FALSE(spec.has_max_steps());
  EXPECT_FALSE(spec.has_input_queue_memory_factor()) << "the trainer's default applies";
  EXPECT_FALSE(spec.sync_batch_norm());
  EXPECT_EQ(spec.model(), "");
}

TEST(TrainingFlagsTest, RefusesValuesOfTheWrongTypeAndMissingDirectories) {
  {
    CLI::App app;
    const TrainingFlags flags(&app);
    EXPECT_THROW(Parse(app, {"--data_dir", "d", "--train_dir", "t", "--batch_size", "many"}),
                 CLI::ParseError);
  }
  {
    CLI::App app;
    const TrainingFlags flags(&app);
    EXPECT_THROW(Parse(app, {"--data_dir", "d", "--train_dir", "t", "--batch_size", "4294967296"}),
                 CLI::ParseError)
        << "batch_size is an int32";
  }
  {
    CLI::App app;
    const TrainingFlags flags(&app);
    try {
      Parse(app, {"--data_dir", "d"});
      FAIL() << "--train_dir is required";
    } catch (const CLI::ParseError& e) {
      EXPECT_THAT(e.what(), HasSubstr("--train_dir"));
    }
  }
}

TEST(TrainingFlagsTest, HelpNamesTheSharedDefaults) {
  CLI::App app;
  const TrainingFlags flags(&app);
  const std::string help = app.help();
  EXPECT_THAT(help, HasSubstr("Examples per step (default 32)"));
  EXPECT_THAT(help, HasSubstr("fp32 or bf16"));
  EXPECT_THAT(help, HasSubstr("inception_v3 (default)"));
}

}  // namespace
}  // namespace retrain::client
