#include "tests/trainer/input/test_dataset.h"

// clang-format off
#include <cstdio>
#include <jpeglib.h>
// clang-format on
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "common/proto_wire.h"
#include "common/tfrecord.h"
#include "dataset/manifest.h"
#include "dataset/webdataset.h"

namespace retrain::trainer::testing {

RgbImage MakePhotoImage(int width, int height, uint64_t seed) {
  RgbImage img{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  const double s = static_cast<double>(seed % 1000);
  const double cx1 = width * (0.3 + 0.4 * std::fmod(s * 0.37, 1.0));
  const double cy1 = height * (0.3 + 0.4 * std::fmod(s * 0.61, 1.0));
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const double u = static_cast<double>(x) / width, v = static_cast<double>(y) / height;
      const double d = std::hypot(x - cx1, y - cy1) / (0.3 * (width + height));
      const double blob = std::exp(-d * d * 4.0);
      const double tex = 12.0 * std::sin(x * 0.9 + s) * std::cos(y * 0.7 - s);
      double r = 40 + 150 * u + 60 * blob + tex;
      double g = 60 + 120 * v + 40 * std::sin(6.0 * u + s) + tex * 0.5;
      double b = 90 + 80 * (1 - u) * v + 80 * blob - tex * 0.5;
      uint8_t* p = &img.pixels[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>(std::clamp(r, 0.0, 255.0));
      p[1] = static_cast<uint8_t>(std::clamp(g, 0.0, 255.0));
      p[2] = static_cast<uint8_t>(std::clamp(b, 0.0, 255.0));
    }
  }
  return img;
}

void IdColor(int id, uint8_t rgb[3]) {
  rgb[0] = static_cast<uint8_t>(16 * (id % 16) + 8);
  rgb[1] = static_cast<uint8_t>(16 * (id / 16 % 16) + 8);
  rgb[2] = 128;
}

int IdFromColor(float r, float g, float b) {
  const float fr = (r - 8.0f) / 16.0f, fg = (g - 8.0f) / 16.0f;
  const int ir = static_cast<int>(std::lround(fr)), ig = static_cast<int>(std::lround(fg));
  if (std::fabs(fr - ir) > 0.4f || std::fabs(fg - ig) > 0.4f || std::fabs(b - 128.0f) > 7.0f ||
      ir < 0 || ir > 15 || ig < 0 || ig > 15) {
    return -1;
  }
  return ig * 16 + ir;
}

RgbImage MakeIdImage(int width, int height, int id) {
  RgbImage img = MakePhotoImage(width, height, static_cast<uint64_t>(id) + 7);
  uint8_t c[3];
  IdColor(id, c);
  for (int y = height / 4; y < height - height / 4; ++y) {
    for (int x = width / 4; x < width - width / 4; ++x) {
      uint8_t* p = &img.pixels[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = c[0], p[1] = c[1], p[2] = c[2];
    }
  }
  return img;
}

std::string EncodeJpeg(const RgbImage& image, int quality) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);  // test helper: libjpeg's default exits on error
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(image.width);
  cinfo.image_height = static_cast<JDIMENSION>(image.height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(image.pixels.data() +
                                        static_cast<size_t>(cinfo.next_scanline) * image.width * 3);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(buffer), size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return out;
}

namespace {

// One entry of Features.feature (a map<string, Feature>) in the wire format:
// key = 1, value = 2; Feature.bytes_list = 1, Feature.int64_list = 3; the
// lists' values are field 1 (int64 packed, as protobuf writes proto3).
std::string FeatureEntry(const std::string& key, uint32_t list_field, const std::string& list) {
  std::string feature, entry;
  wire::AppendBytesField(list_field, list, &feature);
  wire::AppendBytesField(1, key, &entry);
  wire::AppendBytesField(2, feature, &entry);
  return entry;
}

std::string Int64Feature(const std::string& key, int64_t value) {
  std::string packed, list;
  wire::AppendVarint(static_cast<uint64_t>(value), &packed);
  wire::AppendBytesField(1, packed, &list);
  return FeatureEntry(key, 3, list);
}

std::string BytesFeature(const std::string& key, const std::string& value) {
  std::string list;
  wire::AppendBytesField(1, value, &list);
  return FeatureEntry(key, 1, list);
}

}  // namespace

std::string MakeExample(const std::string& jpeg, int width, int height, int64_t label,
                        const std::string& text, const std::string& filename) {
  // Written with the wire helpers, not libprotobuf: tests that link
  // LibTorch use this (see common/proto_wire.h).
  std::string features;
  for (const std::string& entry :
       {Int64Feature("image/height", height), Int64Feature("image/width", width),
        BytesFeature("image/colorspace", "RGB"), Int64Feature("image/channels", 3),
        Int64Feature("image/class/label", label), BytesFeature("image/class/text", text),
        BytesFeature("image/format", "JPEG"), BytesFeature("image/filename", filename),
        BytesFeature("image/encoded", jpeg)}) {
    wire::AppendBytesField(1, entry, &features);
  }
  std::string example;
  wire::AppendBytesField(1, features, &example);
  return example;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  if (!out) throw std::runtime_error("cannot write " + path);
}

namespace {

// Directories made by MakeTempDir, removed when the test program exits.
std::vector<std::string>& TempDirs() {
  static std::vector<std::string> dirs;
  return dirs;
}

void RemoveTempDirs() {
  for (const auto& dir : TempDirs()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
}

}  // namespace

std::string MakeTempDir(const std::string& name) {
  std::string base = ::testing::TempDir();
  if (base.empty()) base = "/tmp/";
  if (base.back() != '/') base += '/';
  std::string tmpl = base + "retrain-input-" + name + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + tmpl);
  if (TempDirs().empty()) std::atexit(RemoveTempDirs);
  TempDirs().push_back(tmpl);
  return tmpl;
}

WrittenDataset WriteDataset(const std::string& dir, const DatasetSpec& spec) {
  using nlohmann::json;
  WrittenDataset written;
  written.dir = dir;
  ::mkdir((dir + "/index").c_str(), 0755);
  json labels = json::array();
  for (int l = 1; l <= spec.num_labels; ++l) {
    labels.push_back({{"id", l}, {"name", "class" + std::to_string(l)}});
  }
  json splits = json::object();
  for (const SplitSpec& ss : spec.splits) {
    auto& records = ss.name == "train" ? written.train : written.validation;
    json shards = json::array();
    int next = 0;
    for (int s = 0; s < ss.num_shards; ++s) {
      // Contiguous runs whose sizes differ by at most one, or shard_sizes.
      const int count = ss.shard_sizes.empty()
                            ? ss.num_records / ss.num_shards + (s < ss.num_records % ss.num_shards)
                            : ss.shard_sizes.at(s);
      const std::string name = dataset::ShardFileName(ss.name, s, ss.num_shards, spec.shard_format);
      std::string shard, index;
      for (int k = 0; k < count; ++k, ++next) {
        const RgbImage img = ss.id_images ? MakeIdImage(ss.width, ss.height, next)
                                          : MakePhotoImage(ss.width, ss.height, next);
        const int64_t label = 1 + next % spec.num_labels;
        const std::string jpeg = EncodeJpeg(img, ss.quality);
        const std::string text = "class" + std::to_string(label);
        const std::string filename = "img" + std::to_string(next) + ".jpg";
        const int64_t offset = static_cast<int64_t>(shard.size());
        if (spec.shard_format == dataset::ShardFormat::kWebDataset) {
          dataset::Sample sample{
              dataset::SampleKey(name, k), jpeg, label, text, filename, ss.height, ss.width};
          std::vector<dataset::TarMember> members;
          dataset::AppendSample(sample, offset, &shard, &members);
          index += dataset::WebDatasetIndexLine(members);
        } else {
          AppendTfRecord(MakeExample(jpeg, ss.width, ss.height, label, text, filename), &shard);
          index += dataset::IndexLine({offset, static_cast<int64_t>(shard.size()) - offset});
        }
        records.push_back({next, label, s, offset});
      }
      if (spec.shard_format == dataset::ShardFormat::kWebDataset) {
        dataset::AppendTarEnd(&shard);
        index = dataset::WebDatasetIndexHeader(count) + index;
      }
      WriteFile(dir + "/" + name, shard);
      WriteFile(dir + "/" + dataset::IndexFileFor(name), index);
      shards.push_back({{"file", name},
                        {"num_records", count},
                        {"num_bytes", shard.size()},
                        {"sha256", ""},
                        {"index", dataset::IndexFileFor(name)}});
    }
    splits[ss.name] = {{"num_records", ss.num_records},
                       {"num_shards", ss.num_shards},
                       {"num_converted", 0},
                       {"shards", shards},
                       {"class_counts", json::array()}};
  }
  json manifest = {{"format", dataset::ManifestFormatFor(spec.shard_format)},
                   {"shard_format", dataset::ShardFormatName(spec.shard_format)},
                   {"job_id", "test"},
                   {"created", "2026-01-01T00:00:00Z"},
                   {"num_classes", spec.num_labels + 1},
                   {"background_class", true},
                   {"labels", labels},
                   {"splits", splits},
                   {"skipped", json::array()},
                   {"duplicates", json::array()},
                   {"seed", 12345},
                   {"options", json::object()}};
  WriteFile(dir + "/dataset.json", manifest.dump(2));
  return written;
}

}  // namespace retrain::trainer::testing
