#include "trainer/nn/step_memory.h"

#include <gtest/gtest.h>

#include <cmath>

#include "trainer/spec/model_catalog.h"
#include "trainer/nn/model.h"

namespace retrain::trainer {
namespace {

const torch::Device kCpu(torch::kCPU);

double RelativeDifference(double a, double b) { return std::abs(a - b) / std::max(a, b); }

TEST(StepMemoryTest, TheLinearModelCostsAtLeastItsInputAndLogitsPerExample) {
  const StepMemory m = MeasureStepMemory("linear", 10, 32, kCpu, Precision::kFloat32,
                                         torch::MemoryFormat::Contiguous);
  const int64_t input = 3 * 32 * 32 * 4;
  EXPECT_GE(m.bytes_per_example, input);
  // Pooling to one layer keeps little per example besides the input.
  EXPECT_LT(m.bytes_per_example, 4 * input);
  EXPECT_EQ(m.weights_bytes, (3 * 32 * 32 * 10 + 10) * 4);
  EXPECT_EQ(m.buffers_bytes, 0);
  EXPECT_GT(m.peak_b, m.peak_a);
}

TEST(StepMemoryTest, GrowsLinearlyWithTheBatch) {
  const StepMemory small = MeasureStepMemory("small", 10, 32, kCpu, Precision::kFloat32,
                                             torch::MemoryFormat::Contiguous, 2, 4);
  const StepMemory large = MeasureStepMemory("small", 10, 32, kCpu, Precision::kFloat32,
                                             torch::MemoryFormat::Contiguous, 8, 16);
  EXPECT_LT(RelativeDifference(small.bytes_per_example, large.bytes_per_example), 0.1)
      << small.bytes_per_example << " vs " << large.bytes_per_example;
  // The prediction from the small batches holds at the large one.
  EXPECT_LT(RelativeDifference(small.StepBytes(16), large.peak_b), 0.1)
      << small.StepBytes(16) << " vs " << large.peak_b;
}

TEST(StepMemoryTest, ScalesWithThePixelsOfTheInput) {
  const StepMemory at32 = MeasureStepMemory("small", 10, 32, kCpu, Precision::kFloat32,
                                            torch::MemoryFormat::Contiguous);
  const StepMemory at64 = MeasureStepMemory("small", 10, 64, kCpu, Precision::kFloat32,
                                            torch::MemoryFormat::Contiguous);
  EXPECT_GT(at64.bytes_per_example, 3 * at32.bytes_per_example);
  EXPECT_LT(at64.bytes_per_example, 5 * at32.bytes_per_example);
}

TEST(StepMemoryTest, LeavesTheRandomStreamAsItWas) {
  torch::manual_seed(7);
  const auto expected = torch::rand({4});
  torch::manual_seed(7);
  MeasureStepMemory("small", 10, 32, kCpu, Precision::kFloat32, torch::MemoryFormat::Contiguous);
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected));
}

TEST(StepMemoryTest, ModelStateCountsOptimizerSlotsAndAverages) {
  StepMemory m;
  m.weights_bytes = 100;
  m.buffers_bytes = 10;
  EXPECT_EQ(ModelStateBytes(m, false), 100 + 10 + 200);
  EXPECT_EQ(ModelStateBytes(m, true), 100 + 10 + 200 + 110);
}

TEST(LargestFittingBatchTest, FindsTheLargestMultipleThatFits) {
  for (int capacity : {1, 7, 8, 9, 63, 64, 65, 100, 1000, 4096, 5000}) {
    std::vector<int> tried;
    auto fits = [&](int b) {
      tried.push_back(b);
      return b <= capacity;
    };
    const int expected = std::min(capacity, 4096) / 8 * 8;
    EXPECT_EQ(LargestFittingBatch(fits, 8, 4096), expected) << capacity;
    for (int b : tried) EXPECT_EQ(b % 8, 0) << b;
    // Doubling, then bisecting: a logarithmic number of trial steps.
    EXPECT_LE(tried.size(), 2u * 10 + 2) << capacity;
  }
  EXPECT_EQ(LargestFittingBatch([](int) { return true; }, 3, 100), 99);
  EXPECT_EQ(LargestFittingBatch([](int) { return false; }, 1, 100), 0);
  EXPECT_EQ(LargestFittingBatch([](int) { return true; }, 8, 4), 0);
}

// The coordinator admits GPU jobs with the catalog's figures: they must be
// what the trainer measures (weights exactly, a step within 15 %).
class CatalogMemoryTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CatalogMemoryTest, CatalogFiguresAreWhatTheTrainerMeasures) {
  const ModelInfo* info = FindModelInfo(GetParam());
  ASSERT_NE(info, nullptr);
  for (int classes : {3, 1001}) {
    ModelPtr model = CreateModel(info->name, classes);
    int64_t weights = 0, buffers = 0;
    for (const auto& p : model->parameters()) weights += p.numel() * p.element_size();
    for (const auto& b : model->buffers()) buffers += b.numel() * b.element_size();
    EXPECT_EQ(info->WeightsBytes(classes), weights) << info->name << " " << classes;
    EXPECT_EQ(info->buffers_bytes, buffers) << info->name;
  }
  for (Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
    const bool bf16 = precision == Precision::kBFloat16;
    const StepMemory m = MeasureStepMemory(info->name, 1001, info->default_image_size, kCpu,
                                           precision, torch::MemoryFormat::Contiguous);
    const int64_t catalog = bf16 ? info->step_bytes_per_example_bf16 : info->step_bytes_per_example;
    std::printf("%s %s: %lld bytes per example, %lld fixed (catalog %lld)\n", info->name.c_str(),
                bf16 ? "bf16" : "fp32", static_cast<long long>(m.bytes_per_example),
                static_cast<long long>(m.fixed_bytes), static_cast<long long>(catalog));
    EXPECT_LT(RelativeDifference(m.bytes_per_example, catalog), 0.15)
        << info->name << (bf16 ? " bf16" : " fp32") << ": measured " << m.bytes_per_example
        << " bytes per example, the catalog says " << catalog;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryModel, CatalogMemoryTest,
                         ::testing::Values("inception_v3", "linear", "resnet50", "small"));

}  // namespace
}  // namespace retrain::trainer
