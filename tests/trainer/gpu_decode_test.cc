// The GPU decode path on a CUDA device: nvJPEG against libjpeg-turbo, and
// the training input decoding on the GPU against the CPU threads. Built and
// run only where LibTorch has CUDA (scripts/gpu-check).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/input/test_dataset.h"
#include "trainer/device_input/device_preprocess.h"
#include "trainer/device_input/jpeg_batch_decoder.h"
#include "trainer/device_input/training_input.h"

namespace retrain::trainer {
namespace {

using ::testing::HasSubstr;

constexpr int kImage = 299;

class GpuDecodeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir("gpu-decode"));
    testing::DatasetSpec spec;
    testing::SplitSpec train{"train", 64, 2, 500, 375};
    train.id_images = false;
    spec.splits = {train, {"validation", 8, 1, 500, 375}};
    testing::WriteDataset(*dir_, spec);
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(torch::cuda::is_available()) << "this test needs CUDA"; }

  static InputPipeline::Options Options() {
    InputPipeline::Options o;
    o.data_dir = *dir_;
    o.batch_size = 16;
    o.image_size = kImage;
    o.num_preprocess_threads = 4;
    o.input_queue_memory_factor = 1;
    o.seed = 3;
    o.dct_scaling = false;
    return o;
  }

  static std::string* dir_;
};
std::string* GpuDecodeTest::dir_ = nullptr;

const torch::Device kGpu(torch::kCUDA, 0);

TEST_F(GpuDecodeTest, NvjpegDecodesAsLibjpegTurboDoesToWithinIdctRounding) {
  std::string why;
  auto nvjpeg = MakeNvjpegDecoder(kGpu, &why);
  ASSERT_NE(nvjpeg, nullptr) << why;
  std::cout << "decoder: " << nvjpeg->name() << "\n";
  auto host = MakeHostJpegDecoder(torch::kCPU);
  InputPipeline::Options o = Options();
  o.device_decode = true;
  InputPipeline pipeline(o);
  Batch b;
  ASSERT_TRUE(pipeline.Next(&b));
  std::vector<torch::Tensor> gpu, cpu;
  std::vector<std::string> gpu_errors, cpu_errors;
  nvjpeg->Decode(b.encoded, &gpu, &gpu_errors);
  host->Decode(b.encoded, &cpu, &cpu_errors);
  std::vector<PreprocessPlan> plans;
  for (size_t i = 0; i < gpu.size(); ++i) {
    ASSERT_TRUE(gpu[i].defined()) << gpu_errors[i];
    ASSERT_EQ(gpu[i].device(), kGpu);
    ASSERT_EQ(gpu[i].sizes(), cpu[i].sizes());
    const auto diff = (gpu[i].cpu().to(torch::kFloat32) - cpu[i].to(torch::kFloat32)).abs();
    EXPECT_LT(diff.mean().item<double>(), 2.0) << "image " << i;
    plans.push_back(b.encoded[i].plan);
  }
  const auto on_gpu = PreprocessDecoded(gpu, plans, kImage).cpu();
  const auto on_cpu = PreprocessDecoded(cpu, plans, kImage);
  EXPECT_LT((on_gpu - on_cpu).abs().mean().item<double>(), 0.02);
}

TEST_F(GpuDecodeTest, TrainingInputOnTheGpuGivesTheCpuThreadsBatches) {
  TrainingInput::Options o;
  o.pipeline = Options();
  o.device = kGpu;
  o.decode = DecodePlace::kGpu;
  TrainingInput input(o, LoadDatasetManifest(*dir_));
  ASSERT_TRUE(input.on_gpu());
  InputPipeline cpu(Options());
  for (int step = 0; step < 6; ++step) {
    torch::Tensor images, labels;
    input.Next(&images, &labels);
    Batch a;
    ASSERT_TRUE(cpu.Next(&a));
    EXPECT_EQ(images.device(), kGpu);
    const auto expected =
        torch::from_blob(a.images.data(), {a.size, 3, a.height, a.width}, torch::kFloat32);
    ASSERT_EQ(images.sizes(), expected.sizes());
    EXPECT_LT((images.cpu() - expected).abs().mean().item<double>(), 0.02) << "step " << step;
    const auto l = labels.cpu();
    EXPECT_EQ(std::vector<int64_t>(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel()),
              a.labels);
    EXPECT_EQ(input.position(), cpu.position());
  }
}

TEST_F(GpuDecodeTest, ABrokenJpegIsNamedByItsRecord) {
  std::string why;
  auto nvjpeg = MakeNvjpegDecoder(kGpu, &why);
  ASSERT_NE(nvjpeg, nullptr) << why;
  InputPipeline::Options o = Options();
  o.device_decode = true;
  InputPipeline pipeline(o);
  Batch b;
  ASSERT_TRUE(pipeline.Next(&b));
  b.encoded[2].jpeg.resize(b.encoded[2].jpeg.size() / 3);
  std::vector<torch::Tensor> images;
  std::vector<std::string> errors;
  nvjpeg->Decode(b.encoded, &images, &errors);
  EXPECT_FALSE(images[2].defined());
  EXPECT_THAT(errors[2], HasSubstr(b.encoded[2].where));
  for (size_t i = 0; i < images.size(); ++i) {
    if (i != 2) {
      EXPECT_TRUE(images[i].defined()) << errors[i];
    }
  }
}

}  // namespace
}  // namespace retrain::trainer
