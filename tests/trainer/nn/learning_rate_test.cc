#include "trainer/nn/learning_rate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

TEST(StaircaseLearningRateTest, DropsByFactorAtEachBoundary) {
  EXPECT_DOUBLE_EQ(StaircaseLearningRate(0, 0.1, 100, 0.16), 0.1);
  EXPECT_DOUBLE_EQ(StaircaseLearningRate(99, 0.1, 100, 0.16), 0.1);
  EXPECT_DOUBLE_EQ(StaircaseLearningRate(100, 0.1, 100, 0.16), 0.1 * 0.16);
  EXPECT_DOUBLE_EQ(StaircaseLearningRate(199, 0.1, 100, 0.16), 0.1 * 0.16);
  EXPECT_DOUBLE_EQ(StaircaseLearningRate(250, 0.1, 100, 0.16), 0.1 * 0.16 * 0.16);
  EXPECT_DOUBLE_EQ(StaircaseLearningRate(1000, 0.5, 1, 0.5), 0.5 * std::pow(0.5, 1000));
}

TEST(StaircaseLearningRateTest, RejectsBadArguments) {
  EXPECT_THROW(StaircaseLearningRate(0, 0.1, 0, 0.16), TrainerError);
  EXPECT_THROW(StaircaseLearningRate(-1, 0.1, 10, 0.16), TrainerError);
}

TEST(DecayStepsTest, MatchesTheReferenceFormula) {
  // ImageNet: 1281167 / 32 * 30 = 1201094.06 -> 1201094.
  EXPECT_EQ(DecaySteps(1281167, 32, 30.0), 1201094);
  EXPECT_EQ(DecaySteps(1000, 32, 2.0), 62);  // 62.5
  EXPECT_EQ(DecaySteps(1000, 10, 0.5), 50);
}

TEST(DecayStepsTest, NeverZero) {
  EXPECT_EQ(DecaySteps(10, 32, 1.0), 1);
  EXPECT_EQ(DecaySteps(0, 32, 30.0), 1);
}

TEST(DecayStepsTest, RejectsBadArguments) {
  try {
    DecaySteps(1000, 0, 30.0);
    FAIL() << "no throw";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig);
    EXPECT_NE(std::string(e.what()).find("batch_size"), std::string::npos);
  }
  EXPECT_THROW(DecaySteps(-1, 32, 30.0), TrainerError);
  EXPECT_THROW(DecaySteps(1000, 32, 0.0), TrainerError);
}

}  // namespace
}  // namespace retrain::trainer
