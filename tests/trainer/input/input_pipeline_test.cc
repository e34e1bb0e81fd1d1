#include "trainer/input/input_pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "common/tfrecord.h"
#include "tests/trainer/input/test_dataset.h"
#include "trainer/input/memory_plan.h"
#include "trainer/input/shuffle_buffer.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

using ::testing::HasSubstr;

constexpr int kImage = 32;

class InputPipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir("pipeline"));
    testing::DatasetSpec spec;
    spec.splits = {{"train", 45, 4, 64, 48}, {"validation", 23, 3, 64, 48}};
    spec.num_labels = 5;
    testing::WriteDataset(*dir_, spec);
  }
  static void TearDownTestSuite() { delete dir_; }

  static InputPipeline::Options TrainOptions() {
    InputPipeline::Options o;
    o.data_dir = *dir_;
    o.split = "train";
    o.batch_size = 8;
    o.image_size = kImage;
    o.num_preprocess_threads = 1;
    o.num_readers = 2;
    o.input_queue_memory_factor = 1;  // 1024 + 24 records: many epochs of 45
    o.seed = 17;
    return o;
  }
  static InputPipeline::Options EvalOptions() {
    InputPipeline::Options o = TrainOptions();
    o.split = "validation";
    o.train = false;
    o.batch_size = 5;
    o.num_preprocess_threads = 3;
    return o;
  }

  static std::vector<Batch> Take(InputPipeline* p, int n) {
    std::vector<Batch> out;
    for (int i = 0; i < n; ++i) {
      Batch b;
      if (!p->Next(&b)) break;
      out.push_back(std::move(b));
    }
    return out;
  }

  // Which record an evaluation image came from: the centre pixel's colour.
  static int RecordOf(const Batch& b, int i) {
    const int plane = b.height * b.width;
    const int centre = (b.height / 2) * b.width + b.width / 2;
    const float* img = b.images.data() + static_cast<size_t>(i) * 3 * plane;
    auto value = [&](int c) { return (img[c * plane + centre] / 2.0f + 0.5f) * 255.0f; };
    return testing::IdFromColor(value(0), value(1), value(2));
  }

  static std::string* dir_;
};
std::string* InputPipelineTest::dir_ = nullptr;

void ExpectSameBatches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].size, b[i].size);
    EXPECT_EQ(a[i].labels, b[i].labels) << "batch " << i;
    EXPECT_TRUE(a[i].images == b[i].images) << "batch " << i;
    EXPECT_EQ(a[i].first_sequence, b[i].first_sequence);
  }
}

TEST_F(InputPipelineTest, SameSeedSameBatchesWhateverTheThreadCount) {
  auto o = TrainOptions();
  InputPipeline one(o);
  const auto a = Take(&one, 12);
  o.num_preprocess_threads = 4;
  o.prefetch_batches = 3;
  InputPipeline four(o);
  const auto b = Take(&four, 12);
  ASSERT_EQ(a.size(), 12u);
  ExpectSameBatches(a, b);
  for (const auto& batch : a) {
    EXPECT_EQ(batch.size, 8);
    EXPECT_EQ(batch.height, kImage);
    EXPECT_EQ(batch.width, kImage);
    EXPECT_EQ(batch.images.size(), 8u * 3 * kImage * kImage);
    for (float v : batch.images) ASSERT_TRUE(v >= -1.0f && v <= 1.0f);
    for (int64_t l : batch.labels) {
      EXPECT_GE(l, 1);
      EXPECT_LE(l, 5);
    }
  }
  o.seed = 18;
  InputPipeline other(o);
  const auto c = Take(&other, 2);
  EXPECT_NE(a[0].labels == c[0].labels && a[1].labels == c[1].labels && a[0].images == c[0].images,
            true);
}

// The trainer reads the same records the same way whatever the shards'
// format: a WebDataset copy of the dataset gives the same batches, bit for
// bit, in training (shuffled shards and buffer, crops) and evaluation.
TEST_F(InputPipelineTest, WebDatasetShardsGiveTheBatchesTheirTfRecordTwinGives) {
  const std::string wds = testing::MakeTempDir("pipeline-wds");
  testing::DatasetSpec spec;
  spec.splits = {{"train", 45, 4, 64, 48}, {"validation", 23, 3, 64, 48}};
  spec.num_labels = 5;
  spec.shard_format = dataset::ShardFormat::kWebDataset;
  testing::WriteDataset(wds, spec);
  for (auto o : {TrainOptions(), EvalOptions()}) {
    InputPipeline tfrecord(o);
    o.data_dir = wds;
    InputPipeline webdataset(o);
    EXPECT_EQ(webdataset.manifest().shard_format, dataset::ShardFormat::kWebDataset);
    const auto a = Take(&tfrecord, o.train ? 12 : 5);
    ASSERT_EQ(a.size(), o.train ? 12u : 5u);
    ExpectSameBatches(a, Take(&webdataset, o.train ? 12 : 5));
  }
}

TEST_F(InputPipelineTest, EvalPassSeesEveryRecordOnceWithItsLabel) {
  InputPipeline p(EvalOptions());
  EXPECT_EQ(p.records_per_epoch(), 23);
  std::multiset<int> seen;
  int batches = 0;
  Batch b;
  while (p.Next(&b)) {
    ++batches;
    ASSERT_EQ(b.labels.size(), static_cast<size_t>(b.size));
    ASSERT_EQ(b.images.size(), static_cast<size_t>(b.size) * 3 * kImage * kImage);
    for (int i = 0; i < b.size; ++i) {
      const int id = RecordOf(b, i);
      ASSERT_GE(id, 0) << "unrecognised centre colour";
      EXPECT_EQ(b.labels[i], 1 + id % 5) << "record " << id;
      seen.insert(id);
    }
  }
  EXPECT_EQ(batches, 5);  // 4 x 5 + 3
  EXPECT_EQ(b.size, 3);
  ASSERT_EQ(seen.size(), 23u);
  for (int id = 0; id < 23; ++id) EXPECT_EQ(seen.count(id), 1u) << id;
  EXPECT_FALSE(p.Next(&b));
  EXPECT_EQ(p.stats().batches, 5);
}

TEST_F(InputPipelineTest, EvalIsDeterministicAndRanksSplitTheRecords) {
  auto o = EvalOptions();
  InputPipeline a(o), b(o);
  ExpectSameBatches(Take(&a, 100), Take(&b, 100));

  std::set<int> all;
  for (int rank = 0; rank < 2; ++rank) {
    o.rank = rank;
    o.world_size = 2;
    InputPipeline p(o);
    EXPECT_EQ(p.records_per_epoch(), 11);
    int count = 0;
    for (const auto& batch : Take(&p, 100)) {
      for (int i = 0; i < batch.size; ++i) {
        EXPECT_TRUE(all.insert(RecordOf(batch, i)).second);
        ++count;
      }
    }
    EXPECT_EQ(count, 11);
  }
  EXPECT_EQ(all.size(), 22u);  // one record dropped so that ranks are equal
}

TEST_F(InputPipelineTest, ResumeFromAPositionGivesTheSameNextBatches) {
  auto o = TrainOptions();
  o.num_preprocess_threads = 2;
  InputPipeline a(o);
  Take(&a, 7);
  const InputPipeline::Position saved = a.position();
  EXPECT_EQ(saved.sequence, 56);
  EXPECT_EQ(static_cast<int64_t>(saved.buffered.size()),
            ReferenceShuffleBufferSize(1, 8).capacity - 1);
  const std::string json = saved.ToJson();
  const auto continued = Take(&a, 6);

  InputPipeline b(o);
  const auto restored = InputPipeline::Position::FromJson(json);
  EXPECT_TRUE(restored == saved);
  b.Seek(restored);
  ExpectSameBatches(continued, Take(&b, 6));

  // Seek on a running pipeline rewinds it.
  a.Seek(saved);
  ExpectSameBatches(continued, Take(&a, 6));

  // Without a shuffle buffer the position is the source's alone.
  o.input_queue_memory_factor = 0;
  InputPipeline c(o);
  Take(&c, 3);
  const auto p0 = c.position();
  EXPECT_TRUE(p0.buffered.empty());
  EXPECT_EQ(p0.source.index, 24);
  const auto next = Take(&c, 4);  // crosses into the second epoch
  InputPipeline d(o);
  d.Seek(p0);
  ExpectSameBatches(next, Take(&d, 4));
}

TEST_F(InputPipelineTest, PositionsThatCannotBelongAreRefused) {
  auto o = TrainOptions();
  InputPipeline p(o);
  InputPipeline::Position pos;
  pos.sequence = 3;  // not a batch boundary
  EXPECT_THROW(p.Seek(pos), TrainerError);
  pos.sequence = 8;
  pos.buffered.resize(5000);
  EXPECT_THROW(p.Seek(pos), TrainerError);
  EXPECT_THROW(InputPipeline::Position::FromJson("{\"epoch\": 1}"), TrainerError);
}

TEST_F(InputPipelineTest, StopEndsNextAndTheDestructorJoins) {
  auto o = TrainOptions();
  o.num_preprocess_threads = 3;
  {
    InputPipeline p(o);
    Batch b;
    ASSERT_TRUE(p.Next(&b));
    std::thread stopper([&] { p.Stop(); });
    stopper.join();
    EXPECT_FALSE(p.Next(&b));
  }
  {
    InputPipeline p(o);  // destroyed while its threads are busy
    Batch b;
    ASSERT_TRUE(p.Next(&b));
  }
  InputPipeline never_started(o);  // no threads at all
}

TEST_F(InputPipelineTest, BadImageIsADataErrorOrSkipped) {
  const std::string dir = testing::MakeTempDir("badimage");
  testing::DatasetSpec spec;
  spec.splits = {{"validation", 6, 1, 64, 48}};
  testing::WriteDataset(dir, spec);
  // Rewrite the shard with record 4's image cut short (valid framing).
  std::string shard, index;
  for (int i = 0; i < 6; ++i) {
    std::string jpeg = testing::EncodeJpeg(testing::MakeIdImage(64, 48, i), 90);
    if (i == 4) jpeg.resize(jpeg.size() / 3);
    const int64_t offset = static_cast<int64_t>(shard.size());
    AppendTfRecord(testing::MakeExample(jpeg, 64, 48, 1 + i % 3, "c", "x.jpg"), &shard);
    index += std::to_string(offset) + " " + std::to_string(shard.size() - offset) + "\n";
  }
  const std::string shard_path = dir + "/validation-00000-of-00001";
  const std::string old = testing::ReadFile(shard_path);
  testing::WriteFile(shard_path, shard);
  testing::WriteFile(dir + "/index/validation-00000-of-00001.idx", index);
  auto manifest = testing::ReadFile(dir + "/dataset.json");
  const std::string from = "\"num_bytes\": " + std::to_string(old.size());
  manifest.replace(manifest.find(from), from.size(),
                   "\"num_bytes\": " + std::to_string(shard.size()));
  testing::WriteFile(dir + "/dataset.json", manifest);

  InputPipeline::Options o = EvalOptions();
  o.data_dir = dir;
  o.batch_size = 4;
  {
    InputPipeline p(o);
    Batch b;
    ASSERT_TRUE(p.Next(&b));
    try {
      p.Next(&b);
      FAIL() << "no error";
    } catch (const TrainerError& e) {
      EXPECT_EQ(e.kind(), TrainerError::Kind::kData);
      EXPECT_THAT(e.what(), HasSubstr(shard_path + ": record at offset"));
    }
  }
  o.skip_corrupt_records = true;
  InputPipeline p(o);
  std::vector<int> ids;
  for (const auto& b : Take(&p, 10)) {
    for (int i = 0; i < b.size; ++i) ids.push_back(RecordOf(b, i));
  }
  EXPECT_EQ(ids, (std::vector<int>{0, 1, 2, 3, 5}));
  EXPECT_EQ(p.stats().skipped_images, 1);
}

TEST_F(InputPipelineTest, OptionsAreChecked) {
  auto o = TrainOptions();
  o.batch_size = 0;
  EXPECT_THROW(InputPipeline p(o), TrainerError);
  o = TrainOptions();
  o.rank = 1;
  EXPECT_THROW(InputPipeline p(o), TrainerError);
  o = TrainOptions();
  o.data_dir = *dir_ + "/nope";
  try {
    InputPipeline p(o);
    FAIL();
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kData);
  }
}

TEST_F(InputPipelineTest, MemoryPlanFigures) {
  const DatasetManifest m = LoadDatasetManifest(*dir_);
  InputPipeline::Options o;
  o.data_dir = *dir_;
  o.batch_size = 32;
  o.image_size = 299;
  o.num_preprocess_threads = 4;
  o.input_queue_memory_factor = 16;
  o.prefetch_batches = 2;
  const MemoryPlan plan = PlanInputMemory(o, m);
  const double mean = m.mean_record_bytes("train");
  EXPECT_NEAR(plan.shuffle_buffer_bytes, (16 * 1024 + 96) * mean, 1.0);
  EXPECT_EQ(plan.batch_bytes, 3LL * 32 * 3 * 299 * 299 * 4);
  EXPECT_GT(plan.decode_buffer_bytes, 4LL * 3 * 598 * 598);
  EXPECT_EQ(plan.total_bytes, plan.shuffle_buffer_bytes + plan.in_flight_record_bytes +
                                  plan.decode_buffer_bytes + plan.batch_bytes +
                                  plan.bookkeeping_bytes);
  EXPECT_THAT(plan.description, HasSubstr("--input_queue_memory_factor 16"));
  EXPECT_THAT(plan.description, HasSubstr("16480 records"));
  EXPECT_EQ(plan.description.find('\n'), std::string::npos);

  o.train = false;
  o.split = "validation";
  EXPECT_EQ(PlanInputMemory(o, m).shuffle_buffer_bytes, 0);
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(3.0 * 1024 * 1024 * 1024), "3.0 GiB");
}

}  // namespace
}  // namespace retrain::trainer
