// The GPU decode path on the CPU: the pipeline leaves the JPEGs encoded,
// libjpeg-turbo decodes them whole (the decoder nvJPEG falls back to) and
// PreprocessDecoded() does the rest with tensor operations. With the same
// draws it must give what the CPU threads give.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/trainer/input/test_dataset.h"
#include "trainer/device_input/device_preprocess.h"
#include "trainer/device_input/jpeg_batch_decoder.h"
#include "trainer/device_input/training_input.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

using ::testing::HasSubstr;

constexpr int kImage = 40;

class DeviceInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir("device-input"));
    testing::DatasetSpec spec;
    testing::SplitSpec train{"train", 32, 2, 90, 70};
    train.id_images = false;  // photo-like: resampling and colours show
    testing::SplitSpec validation{"validation", 12, 1, 77, 53};
    validation.id_images = false;
    spec.splits = {train, validation};
    spec.num_labels = 4;
    testing::WriteDataset(*dir_, spec);
  }
  static void TearDownTestSuite() { delete dir_; }

  static InputPipeline::Options Options(bool train) {
    InputPipeline::Options o;
    o.data_dir = *dir_;
    o.split = train ? "train" : "validation";
    o.train = train;
    o.batch_size = 8;
    o.image_size = kImage;
    o.num_preprocess_threads = 2;
    o.input_queue_memory_factor = 1;
    o.seed = 5;
    o.dct_scaling = false;  // the GPU path decodes at full size
    return o;
  }

  // The CPU threads' batch as a tensor.
  static torch::Tensor CpuImages(Batch& b) {
    return torch::from_blob(b.images.data(), {b.size, 3, b.height, b.width}, torch::kFloat32)
        .clone();
  }

  static torch::Tensor DecodeOnHost(const Batch& b) {
    auto decoder = MakeHostJpegDecoder(torch::kCPU);
    std::vector<torch::Tensor> images;
    std::vector<std::string> errors;
    decoder->Decode(b.encoded, &images, &errors);
    std::vector<PreprocessPlan> plans;
    for (size_t i = 0; i < images.size(); ++i) {
      EXPECT_TRUE(images[i].defined()) << errors[i];
      plans.push_back(b.encoded[i].plan);
    }
    return PreprocessDecoded(images, plans, kImage);
  }

  static std::string* dir_;
};
std::string* DeviceInputTest::dir_ = nullptr;

void ExpectSameImages(const torch::Tensor& got, const torch::Tensor& expected) {
  ASSERT_EQ(got.sizes(), expected.sizes());
  const double worst = (got - expected).abs().max().item<double>();
  const double mean = (got - expected).abs().mean().item<double>();
  EXPECT_LT(worst, 2e-4);
  EXPECT_LT(mean, 1e-5);
}

TEST_F(DeviceInputTest, TrainingBatchesEqualTheCpuThreadsWithTheSameDraws) {
  InputPipeline cpu(Options(true));
  InputPipeline::Options o = Options(true);
  o.device_decode = true;
  InputPipeline encoded(o);
  int flips = 0, orderings[2] = {0, 0};
  int methods[4] = {0, 0, 0, 0};
  for (int step = 0; step < 6; ++step) {
    Batch a, b;
    ASSERT_TRUE(cpu.Next(&a));
    ASSERT_TRUE(encoded.Next(&b));
    ASSERT_EQ(a.size, b.size);
    EXPECT_EQ(a.labels, b.labels);
    EXPECT_EQ(a.first_sequence, b.first_sequence);
    EXPECT_TRUE(b.images.empty());
    ASSERT_EQ(b.encoded.size(), static_cast<size_t>(b.size));
    for (const EncodedImage& e : b.encoded) {
      EXPECT_TRUE(e.plan.distort_color);
      EXPECT_EQ(e.plan.width, 90);
      EXPECT_THAT(e.where, HasSubstr("record at offset"));
      flips += e.plan.distortion.flip;
      ++orderings[e.plan.distortion.color.ordering];
      ++methods[static_cast<int>(e.plan.distortion.method)];
    }
    SCOPED_TRACE("batch " + std::to_string(step));
    ExpectSameImages(DecodeOnHost(b), CpuImages(a));
    EXPECT_EQ(cpu.position(), encoded.position());
  }
  // The batches exercised every resize method, both colour orders and flips.
  for (int m : methods) EXPECT_GT(m, 0);
  EXPECT_GT(orderings[0], 0);
  EXPECT_GT(orderings[1], 0);
  EXPECT_GT(flips, 0);
  EXPECT_LT(flips, 48);
}

TEST_F(DeviceInputTest, EvaluationBatchesEqualTheCpuThreads) {
  InputPipeline cpu(Options(false));
  InputPipeline::Options o = Options(false);
  o.device_decode = true;
  InputPipeline encoded(o);
  int batches = 0;
  for (;;) {
    Batch a, b;
    const bool more = cpu.Next(&a);
    ASSERT_EQ(more, encoded.Next(&b));
    if (!more) break;
    ++batches;
    EXPECT_EQ(a.labels, b.labels);
    for (const EncodedImage& e : b.encoded) EXPECT_FALSE(e.plan.distort_color);
    ExpectSameImages(DecodeOnHost(b), CpuImages(a));
  }
  EXPECT_EQ(batches, 2);  // 12 records: 8 + a short batch of 4
}

TEST_F(DeviceInputTest, ABrokenJpegIsNamedByItsRecord) {
  InputPipeline::Options o = Options(true);
  o.device_decode = true;
  InputPipeline encoded(o);
  Batch b;
  ASSERT_TRUE(encoded.Next(&b));
  // The header reads, the data stops short.
  b.encoded[1].jpeg.resize(b.encoded[1].jpeg.size() / 3);
  auto decoder = MakeHostJpegDecoder(torch::kCPU);
  std::vector<torch::Tensor> images;
  std::vector<std::string> errors;
  decoder->Decode(b.encoded, &images, &errors);
  EXPECT_TRUE(images[0].defined());
  EXPECT_FALSE(images[1].defined());
  EXPECT_THAT(errors[1], HasSubstr(b.encoded[1].where));
  EXPECT_TRUE(errors[0].empty());
}

TEST_F(DeviceInputTest, OnTheCpuTrainingInputIsThePipelinesBatches) {
  TrainingInput::Options o;
  o.pipeline = Options(true);
  o.decode = DecodePlace::kAuto;  // no GPU: stays on the CPU threads
  TrainingInput input(o, LoadDatasetManifest(*dir_));
  InputPipeline cpu(Options(true));
  for (int step = 0; step < TrainingInput::kAutoFirstStep + TrainingInput::kAutoSteps + 2; ++step) {
    torch::Tensor images, labels;
    input.Next(&images, &labels);
    Batch a;
    ASSERT_TRUE(cpu.Next(&a));
    EXPECT_TRUE(torch::equal(images, CpuImages(a)));
    EXPECT_EQ(std::vector<int64_t>(labels.data_ptr<int64_t>(),
                                   labels.data_ptr<int64_t>() + labels.numel()),
              a.labels);
  }
  EXPECT_FALSE(input.on_gpu());
}

TEST_F(DeviceInputTest, GpuDecodingWithoutAGpuIsAConfigurationError) {
  TrainingInput::Options o;
  o.pipeline = Options(true);
  o.decode = DecodePlace::kGpu;
  try {
    TrainingInput input(o, LoadDatasetManifest(*dir_));
    FAIL() << "no error";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig);
    EXPECT_THAT(e.what(), HasSubstr("--decode gpu"));
    EXPECT_THAT(e.what(), HasSubstr("--num_gpus"));
  }
  std::string why;
  EXPECT_EQ(MakeNvjpegDecoder(torch::kCPU, &why), nullptr);
  EXPECT_FALSE(why.empty());
}

TEST(DecodePlaceTest, FlagValuesAndTheAutoRule) {
  EXPECT_EQ(ParseDecodePlace("cpu"), DecodePlace::kCpu);
  EXPECT_EQ(ParseDecodePlace("gpu"), DecodePlace::kGpu);
  EXPECT_EQ(ParseDecodePlace("auto"), DecodePlace::kAuto);
  EXPECT_THROW(ParseDecodePlace("nvjpeg"), TrainerError);
  EXPECT_FALSE(CpuInputFallsBehind(0.5, 10.0));
  EXPECT_TRUE(CpuInputFallsBehind(1.5, 10.0));
  EXPECT_FALSE(CpuInputFallsBehind(0.0, 0.0));
}

}  // namespace
}  // namespace retrain::trainer
