// Small datasets for the input pipeline's tests, written the way
// `retrain build-dataset` writes them (TFRecord shards of tf.Example records,
// DALI index files, dataset.json), with JPEGs encoded here by libjpeg: no
// libvips, so these tests build on GPU hosts too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataset/layout.h"

namespace retrain::trainer::testing {

// An 8-bit RGB image, interleaved.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3
};

// A photo-like test image: smooth gradients, a few soft blobs and some fine
// texture, different for every `seed`.
RgbImage MakePhotoImage(int width, int height, uint64_t seed);

// An image whose central half (both ways) is one flat colour that encodes
// `id` (IdColor), around a textured border: the centre pixel of an
// evaluation crop tells which record an output came from.
RgbImage MakeIdImage(int width, int height, int id);
// The flat colour of MakeIdImage(id): r = 16 * (id % 16) + 8,
// g = 16 * (id / 16 % 16) + 8, b = 128. Ids 0..255; far enough apart to
// survive JPEG quality 90 and resizing.
void IdColor(int id, uint8_t rgb[3]);
// Inverse of IdColor, from colour values in [0, 255]; -1 if the colour is
// not near one.
int IdFromColor(float r, float g, float b);

// The bytes of `s`, as the decoders take them.
inline const uint8_t* Bytes(const std::string& s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

// Baseline JPEG, 4:2:0, at `quality`.
std::string EncodeJpeg(const RgbImage& image, int quality = 90);

// A serialized tf.Example with the reference's nine features.
std::string MakeExample(const std::string& jpeg, int width, int height, int64_t label,
                        const std::string& text, const std::string& filename);

struct SplitSpec {
  std::string name;  // "train" or "validation"
  int num_records = 0;
  int num_shards = 1;
  int width = 64;  // image size (every record)
  int height = 48;
  bool id_images = true;  // MakeIdImage(record number) rather than MakePhotoImage
  int quality = 90;
  // Records per shard (num_shards entries summing to num_records); empty:
  // as even as possible.
  std::vector<int> shard_sizes = {};
};

struct DatasetSpec {
  std::vector<SplitSpec> splits;
  int num_labels = 3;  // labels 1..num_labels; record i has label 1 + i % num_labels
  dataset::ShardFormat shard_format = dataset::ShardFormat::kTfRecord;
};

// What was written, for checks.
struct WrittenRecord {
  int id = 0;  // record number within its split
  int64_t label = 0;
  int shard = 0;
  int64_t offset = 0;  // of its TFRecord frame, or of its sample's first header
};
struct WrittenDataset {
  std::string dir;
  std::vector<WrittenRecord> train, validation;
};

// Writes the dataset into `dir` (which must exist): shards are dealt
// contiguous runs of records in record order.
WrittenDataset WriteDataset(const std::string& dir, const DatasetSpec& spec);

// A fresh empty directory under the test temp dir, removed at exit.
std::string MakeTempDir(const std::string& name);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& data);

}  // namespace retrain::trainer::testing
