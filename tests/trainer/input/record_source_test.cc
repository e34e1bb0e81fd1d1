#include "trainer/input/record_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "tests/trainer/input/test_dataset.h"
#include "trainer/input/example_fields.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

using ::testing::HasSubstr;

class RecordSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("source");
    testing::DatasetSpec spec;
    // Shards of 4, 4, 4, 3, 3, 3 records.
    spec.splits = {{"train", 21, 6, 16, 16}, {"validation", 5, 1, 16, 16}};
    written_ = testing::WriteDataset(dir_, spec);
    manifest_ = LoadDatasetManifest(dir_);
  }
  const SplitInfo& train() const { return manifest_.split("train"); }

  // The record number of record `id` (record numbers run through the
  // shards in order).
  int RecordNumber(RecordId id) const {
    int n = 0;
    for (int s = 0; s < id.shard; ++s) n += static_cast<int>(train().shards[s].num_records);
    return n + id.index;
  }

  std::string dir_;
  testing::WrittenDataset written_;
  DatasetManifest manifest_;
};

TEST_F(RecordSourceTest, EveryRecordOncePerEpochAndEpochsDiffer) {
  RecordSource::Options o;
  o.seed = 7;
  o.num_readers = 2;
  RecordSource source(train(), o);
  EXPECT_EQ(source.records_per_epoch(), 21);
  const auto e0 = source.EpochOrder(0);
  const auto e1 = source.EpochOrder(1);
  ASSERT_EQ(e0.size(), 21u);
  ASSERT_EQ(e1.size(), 21u);
  EXPECT_EQ(std::set<RecordId>(e0.begin(), e0.end()).size(), 21u);
  EXPECT_EQ(std::set<RecordId>(e1.begin(), e1.end()).size(), 21u);
  EXPECT_NE(e0, e1);
  // Same seed, same order; another seed, another order.
  RecordSource same(train(), o);
  EXPECT_EQ(same.EpochOrder(0), e0);
  o.seed = 8;
  RecordSource other(train(), o);
  EXPECT_NE(other.EpochOrder(0), e0);
}

TEST_F(RecordSourceTest, ReadersInterleaveShardsInOrder) {
  RecordSource::Options o;
  o.shuffle_shards = false;
  o.num_readers = 2;
  RecordSource source(train(), o);
  const auto order = source.EpochOrder(0);
  // Readers take shards 0 and 1, one record each in turn; when shard 0 ends
  // its reader takes shard 2, and so on.
  const std::vector<RecordId> expected_start = {{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2},
                                                {1, 2}, {0, 3}, {1, 3}, {2, 0}, {3, 0}};
  ASSERT_GE(order.size(), expected_start.size());
  EXPECT_EQ(std::vector<RecordId>(order.begin(), order.begin() + 10), expected_start);

  o.num_readers = 1;
  RecordSource one(train(), o);
  const auto sequential = one.EpochOrder(0);
  for (size_t i = 0; i < sequential.size(); ++i) EXPECT_EQ(RecordNumber(sequential[i]), int(i));
}

TEST_F(RecordSourceTest, RanksAreDisjointAndEqualSized) {
  for (int world : {2, 3, 4, 5}) {
    std::set<RecordId> seen;
    for (int rank = 0; rank < world; ++rank) {
      RecordSource::Options o;
      o.seed = 3;
      o.rank = rank;
      o.world_size = world;
      RecordSource source(train(), o);
      EXPECT_EQ(source.records_per_epoch(), 21 / world);
      for (int64_t epoch = 0; epoch < 2; ++epoch) {
        const auto order = source.EpochOrder(epoch);
        EXPECT_EQ(static_cast<int64_t>(order.size()), 21 / world);
        if (epoch == 0) {
          for (const auto& id : order) EXPECT_TRUE(seen.insert(id).second) << "world " << world;
        }
      }
    }
    // The remainder (21 mod world) is dropped.
    EXPECT_EQ(static_cast<int>(seen.size()), 21 / world * world);
  }
  RecordSource::Options o;
  o.rank = 2;
  o.world_size = 2;
  try {
    RecordSource bad(train(), o);
    FAIL();
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kConfig);
  }
}

TEST_F(RecordSourceTest, NextReadsTheRecordsOfTheOrderAcrossEpochs) {
  RecordSource::Options o;
  o.seed = 11;
  o.num_readers = 3;
  RecordSource source(train(), o);
  std::vector<RecordId> expected = source.EpochOrder(0);
  const auto e1 = source.EpochOrder(1);
  expected.insert(expected.end(), e1.begin(), e1.end());
  for (size_t i = 0; i < expected.size(); ++i) {
    Record r;
    ASSERT_TRUE(source.Next(&r));
    EXPECT_EQ(r.id, expected[i]);
    const int n = RecordNumber(r.id);
    TrainingExampleFields fields;
    std::string error;
    ASSERT_TRUE(ParseTrainingExample(r.data, &fields, &error)) << error;
    EXPECT_EQ(fields.label, written_.train[n].label);
    EXPECT_EQ(r.offset, written_.train[n].offset);
  }
  EXPECT_EQ(source.position().epoch, 1);
  EXPECT_EQ(source.position().index, 21);
  Record r;
  ASSERT_TRUE(source.Next(&r));  // repeats
  EXPECT_EQ(source.position().epoch, 2);
}

TEST_F(RecordSourceTest, ResumeFromAPositionContinuesIdentically) {
  RecordSource::Options o;
  o.seed = 5;
  o.num_readers = 2;
  o.rank = 1;
  o.world_size = 2;
  RecordSource a(train(), o);
  Record r;
  for (int i = 0; i < 13; ++i) ASSERT_TRUE(a.Next(&r));  // into the second epoch
  const RecordSource::Position saved = a.position();
  EXPECT_EQ(saved.epoch, 1);
  EXPECT_EQ(saved.index, 3);
  std::vector<RecordId> continued;
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(a.Next(&r));
    continued.push_back(r.id);
  }
  RecordSource b(train(), o);
  b.Seek(saved);
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(b.Next(&r));
    EXPECT_EQ(r.id, continued[i]) << i;
  }
}

TEST_F(RecordSourceTest, OnePassEndsAndReadById) {
  RecordSource::Options o;
  o.shuffle_shards = false;
  o.repeat = false;
  RecordSource source(manifest_.split("validation"), o);
  Record r;
  int n = 0;
  while (source.Next(&r)) ++n;
  EXPECT_EQ(n, 5);
  EXPECT_FALSE(source.Next(&r));
  source.Read({0, 3}, &r);
  EXPECT_EQ(r.offset, written_.validation[3].offset);
  EXPECT_THROW(source.Read({1, 0}, &r), TrainerError);
}

TEST_F(RecordSourceTest, CorruptRecordNamesFileAndOffsetOrIsSkipped) {
  // Damage the data of record 2 of shard 0 (keeping the size).
  const std::string path = train().shards[0].path;
  std::string data = testing::ReadFile(path);
  const int64_t offset = written_.train[2].offset;
  data[static_cast<size_t>(offset + 40)] ^= 0x55;
  testing::WriteFile(path, data);

  RecordSource::Options o;
  o.shuffle_shards = false;
  o.num_readers = 1;
  RecordSource source(train(), o);
  Record r;
  ASSERT_TRUE(source.Next(&r));
  ASSERT_TRUE(source.Next(&r));
  try {
    source.Next(&r);
    FAIL() << "no error";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kData);
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("offset " + std::to_string(offset)));
    EXPECT_THAT(e.what(), HasSubstr("corrupt"));
  }

  o.skip_corrupt = true;
  RecordSource skipping(train(), o);
  int n = 0;
  while (skipping.position().epoch == 0) {
    ASSERT_TRUE(skipping.Next(&r));
    EXPECT_NE(r.id, (RecordId{0, 2}));
    ++n;
  }
  EXPECT_EQ(n, 21);  // 20 of epoch 0, then the first of epoch 1
  EXPECT_EQ(skipping.num_skipped(), 1);
}

TEST_F(RecordSourceTest, TruncatedShardAndBadIndex) {
  // A shard cut short after the manifest was checked.
  SplitInfo split = train();
  const std::string path = split.shards[5].path;
  std::string data = testing::ReadFile(path);
  testing::WriteFile(path, data.substr(0, data.size() - 100));
  RecordSource::Options o;
  o.shuffle_shards = false;
  o.num_readers = 1;
  {
    RecordSource source(split, o);
    source.Seek({0, 20});
    Record r;
    try {
      source.Next(&r);
      FAIL() << "no error";
    } catch (const TrainerError& e) {
      EXPECT_THAT(e.what(), HasSubstr(path));
      EXPECT_THAT(e.what(), HasSubstr("truncated"));
    }
  }
  // An index with a line too few.
  const std::string index = split.shards[1].index_path;
  std::string lines = testing::ReadFile(index);
  lines = lines.substr(0, lines.rfind('\n', lines.size() - 2) + 1);
  testing::WriteFile(index, lines);
  try {
    RecordSource source(split, o);
    FAIL() << "no error";
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kData);
    EXPECT_THAT(e.what(), HasSubstr(index));
    EXPECT_THAT(e.what(), HasSubstr("lists 3 records"));
  }
  testing::WriteFile(index, "0 12\nzero 5\n");
  EXPECT_THROW(RecordSource(split, o), TrainerError);
}

// Seeded random damage to one shard or index file at a time (a flipped bit
// or a cut-off tail), read for one epoch: the reader either stops with a
// data error naming the damaged file, or returns records that are exactly
// the undamaged ones; skipping, it returns only undamaged records. Never
// another exception, never wrong bytes.
TEST_F(RecordSourceTest, RandomDamageIsReportedOrHarmlessNeverWrongData) {
  std::map<RecordId, std::string> original;
  {
    RecordSource::Options o;
    RecordSource source(train(), o);
    Record r;
    while (source.position().epoch == 0 && source.Next(&r)) original[r.id] = r.data;
  }
  ASSERT_EQ(original.size(), 21u);
  std::mt19937_64 rng(20261202);
  int detected = 0;
  const int kTrials = 300;
  for (int trial = 0; trial < kTrials; ++trial) {
    const auto& shard = train().shards[rng() % train().shards.size()];
    const std::string path = rng() % 3 == 0 ? shard.index_path : shard.path;
    const std::string good = testing::ReadFile(path);
    std::string bad = good;
    if (rng() % 4 == 0) {
      bad.resize(rng() % bad.size());
    } else {
      bad[rng() % bad.size()] ^= static_cast<char>(1 << (rng() % 8));
    }
    testing::WriteFile(path, bad);
    for (bool skip : {false, true}) {
      RecordSource::Options o;
      o.skip_corrupt = skip;
      o.num_readers = 1 + static_cast<int>(rng() % 2);
      try {
        RecordSource source(train(), o);
        Record r;
        while (source.position().epoch == 0 && source.Next(&r)) {
          ASSERT_TRUE(original.count(r.id)) << path;
          ASSERT_EQ(r.data, original[r.id]) << "wrong bytes read back from damaged " << path;
        }
      } catch (const TrainerError& e) {
        EXPECT_EQ(e.kind(), TrainerError::Kind::kData) << e.what();
        EXPECT_THAT(e.what(), HasSubstr(path));
        if (!skip) ++detected;
      }
    }
    testing::WriteFile(path, good);
  }
  // A flipped bit changes a CRC-checked byte or an index entry; only a
  // change in an index line's spacing can go unseen.
  EXPECT_GE(detected, kTrials * 9 / 10);
}

}  // namespace
}  // namespace retrain::trainer
