// retrain-bench-input: how fast is the trainer's input pipeline per core?
//
//   retrain-bench-input --images DIR [--passes 3] [--image_size 299]
//                       [--batches 0] [--work DIR] [--factor 1]
//
// Reads every JPEG under DIR (recursively, by content) into memory, then
// measures on one thread:
//   preprocess  ImagePreprocessor::Train on each image (crop sampled as
//               sample_distorted_bounding_box, DCT-scaled crop decode,
//               resize by the variant's method, flip, colour distortion,
//               [-1, 1] CHW floats), variants cycling 0..3 as in the
//               pipeline; images per second of thread CPU time and of wall
//               time; and where the time goes (decode, resize, colour)
//   decode      the same crops decoded four ways: DCT-scaled crop decode
//               (libjpeg-turbo, what the trainer uses), the same at full
//               scale, libvips' shrink-on-load with the same scale then the
//               crop (the alternative the trainer could use), full decode;
//               mean ms
// and, unless --batches 0, the whole InputPipeline with one preprocessing
// thread over a dataset written from the same images (shards, index files,
// dataset.json under --work or a temp dir): images per second of process
// CPU time (reader thread included) and of wall time.
//
// Prints one line per figure, then one JSON object on the last line.
#include "trainer/input/input_pipeline.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>
#include <vips/vips8>

#include "common/tfrecord.h"
#include "tensorflow/core/example/example.pb.h"
#include "trainer/input/color.h"
#include "trainer/input/jpeg_crop_decoder.h"
#include "trainer/input/preprocess.h"
#include "trainer/input/random.h"
#include "trainer/input/resize.h"
#include "trainer/trainer_error.h"

namespace fs = std::filesystem;
using namespace retrain::trainer;
using nlohmann::json;

namespace {

struct Args {
  std::string images;
  std::string work;
  int passes = 3;
  int image_size = 299;
  int batches = 40;
  int factor = 1;
};

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr,
               "retrain-bench-input: %s\n"
               "usage: retrain-bench-input --images DIR [--passes 3] [--image_size 299]\n"
               "       [--batches 40] [--work DIR] [--factor 1]\n",
               error.c_str());
  std::exit(2);
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(flag + " needs a value");
      return argv[++i];
    };
    auto number = [&](int min) {
      const std::string v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < min) {
        Usage(flag + " must be an integer >= " + std::to_string(min));
      }
      return static_cast<int>(n);
    };
    if (flag == "--images") {
      a.images = value();
    } else if (flag == "--work") {
      a.work = value();
    } else if (flag == "--passes") {
      a.passes = number(1);
    } else if (flag == "--image_size") {
      a.image_size = number(1);
    } else if (flag == "--batches") {
      a.batches = number(0);
    } else if (flag == "--factor") {
      a.factor = number(0);
    } else if (flag == "-h" || flag == "--help") {
      Usage("help");
    } else {
      Usage("unknown argument " + flag);
    }
  }
  if (a.images.empty()) Usage("--images is required");
  return a;
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<std::string> LoadJpegs(const std::string& dir) {
  std::vector<std::string> paths;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) paths.push_back(e.path().string());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> out;
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    std::string bytes = s.str();
    if (bytes.size() > 3 && static_cast<uint8_t>(bytes[0]) == 0xFF &&
        static_cast<uint8_t>(bytes[1]) == 0xD8) {
      out.push_back(std::move(bytes));
    }
  }
  return out;
}

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Writes the images as a one-split dataset (4 shards) the way build-dataset does.
void WriteDataset(const std::string& dir, const std::vector<std::string>& jpegs) {
  fs::create_directories(dir + "/index");
  const int shards = 4;
  json shard_list = json::array();
  size_t next = 0;
  for (int s = 0; s < shards; ++s) {
    const size_t count = jpegs.size() / shards + (static_cast<size_t>(s) < jpegs.size() % shards);
    char name[64];
    std::snprintf(name, sizeof(name), "train-%05d-of-%05d", s, shards);
    std::string data, index;
    for (size_t k = 0; k < count; ++k, ++next) {
      JpegCropDecoder decoder;
      const auto h = decoder.ReadHeader(Bytes(jpegs[next]), jpegs[next].size(), "bench");
      tensorflow::Example ex;
      auto& f = *ex.mutable_features()->mutable_feature();
      f["image/height"].mutable_int64_list()->add_value(h.height);
      f["image/width"].mutable_int64_list()->add_value(h.width);
      f["image/colorspace"].mutable_bytes_list()->add_value("RGB");
      f["image/channels"].mutable_int64_list()->add_value(3);
      f["image/class/label"].mutable_int64_list()->add_value(1 + static_cast<int64_t>(next % 10));
      f["image/class/text"].mutable_bytes_list()->add_value("c");
      f["image/format"].mutable_bytes_list()->add_value("JPEG");
      f["image/filename"].mutable_bytes_list()->add_value(std::to_string(next) + ".jpg");
      f["image/encoded"].mutable_bytes_list()->add_value(jpegs[next]);
      const size_t offset = data.size();
      retrain::AppendTfRecord(ex.SerializeAsString(), &data);
      index += std::to_string(offset) + " " + std::to_string(data.size() - offset) + "\n";
    }
    std::ofstream(dir + "/" + name, std::ios::binary) << data;
    std::ofstream(dir + "/index/" + name + ".idx") << index;
    shard_list.push_back({{"file", name},
                          {"num_records", count},
                          {"num_bytes", data.size()},
                          {"sha256", ""},
                          {"index", std::string("index/") + name + ".idx"}});
  }
  json labels = json::array();
  for (int l = 1; l <= 10; ++l) labels.push_back({{"id", l}, {"name", "c" + std::to_string(l)}});
  json manifest = {{"format", "retrain-dataset/1"},
                   {"num_classes", 11},
                   {"background_class", true},
                   {"labels", labels},
                   {"splits",
                    {{"train",
                      {{"num_records", jpegs.size()},
                       {"num_shards", shards},
                       {"shards", shard_list},
                       {"class_counts", json::array()}}}}}};
  std::ofstream(dir + "/dataset.json") << manifest.dump(2);
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  if (VIPS_INIT(argv[0]) != 0) Usage("cannot start libvips");
  vips_concurrency_set(1);  // one thread, as every other figure here
  try {
    const auto jpegs = LoadJpegs(args.images);
    if (jpegs.empty()) Usage("no JPEG files under " + args.images);
    double bytes = 0;
    for (const auto& j : jpegs) bytes += static_cast<double>(j.size());
    std::printf("%zu JPEGs, mean %.1f KB, output %dx%d, %d passes\n", jpegs.size(),
                bytes / jpegs.size() / 1000.0, args.image_size, args.image_size, args.passes);
    const int s = args.image_size;
    json result;

    // --- preprocess: ImagePreprocessor::Train, one thread ---------------------------
    {
      ImagePreprocessor::Options po;
      po.image_size = s;
      ImagePreprocessor pre(po);
      std::vector<float> out(3 * static_cast<size_t>(s) * s);
      for (size_t i = 0; i < std::min<size_t>(jpegs.size(), 20); ++i) {  // warm-up
        pre.Train(Bytes(jpegs[i]), jpegs[i].size(), i, static_cast<int>(i % 4), out.data(), "w");
      }
      const double c0 = ThreadCpuSeconds(), t0 = Now();
      int64_t n = 0;
      for (int pass = 0; pass < args.passes; ++pass) {
        for (size_t i = 0; i < jpegs.size(); ++i, ++n) {
          pre.Train(Bytes(jpegs[i]), jpegs[i].size(),
                    StreamSeed(1, RandomPurpose::kAugmentation, 0, n), static_cast<int>(n % 4),
                    out.data(), "bench");
        }
      }
      const double cpu = ThreadCpuSeconds() - c0, wall = Now() - t0;
      std::printf(
          "preprocess (1 thread): %.1f images/s of CPU time, %.1f images/s wall (%lld "
          "images, %.3f ms each)\n",
          n / cpu, n / wall, static_cast<long long>(n), cpu * 1e3 / n);
      result["preprocess"] = {{"images", n},
                              {"cpu_s", cpu},
                              {"wall_s", wall},
                              {"images_per_cpu_s", n / cpu},
                              {"images_per_s", n / wall}};
    }

    // --- where the time goes, and the three ways to decode --------------------------
    {
      std::vector<TrainDistortion> draws;
      JpegCropDecoder decoder;
      for (size_t i = 0; i < jpegs.size(); ++i) {
        const auto h = decoder.ReadHeader(Bytes(jpegs[i]), jpegs[i].size(), "d");
        Rng rng(StreamSeed(2, RandomPurpose::kAugmentation, 0, i));
        draws.push_back(DrawTrainDistortion(h.width, h.height, static_cast<int>(i % 4), &rng));
      }
      DecodedImage img;
      ResizeScratch scratch;
      std::vector<float> chw(3 * static_cast<size_t>(s) * s);
      double t_decode = 0, t_resize = 0, t_color = 0;
      double t_nodct = 0, t_full = 0, t_vips = 0;
      const int64_t n = static_cast<int64_t>(jpegs.size()) * args.passes;
      int64_t scaled = 0;
      for (int pass = 0; pass < args.passes; ++pass) {
        for (size_t i = 0; i < jpegs.size(); ++i) {
          const auto& d = draws[i];
          double c = ThreadCpuSeconds();
          decoder.ReadHeader(Bytes(jpegs[i]), jpegs[i].size(), "d");
          decoder.DecodeCrop(d.crop, s, s, true, &img);
          double c2 = ThreadCpuSeconds();
          t_decode += c2 - c;
          scaled += img.scale_num < 8;
          Resize(img.pixels.data(), img.width, img.height, img.stride, img.roi, s, s, d.method,
                 d.flip, chw.data(), &scratch);
          c = ThreadCpuSeconds();
          t_resize += c - c2;
          DistortColorInPlace(chw.data(), s * s, d.color);
          c2 = ThreadCpuSeconds();
          t_color += c2 - c;

          decoder.ReadHeader(Bytes(jpegs[i]), jpegs[i].size(), "d");
          decoder.DecodeCrop(d.crop, s, s, false, &img);
          c = ThreadCpuSeconds();
          t_nodct += c - c2;
          decoder.ReadHeader(Bytes(jpegs[i]), jpegs[i].size(), "d");
          decoder.DecodeFull(&img);
          c2 = ThreadCpuSeconds();
          t_full += c2 - c;

          // libvips: shrink-on-load by the largest of 8, 4, 2 that keeps the
          // crop at least s x s (the DCT scale's rule), then the crop. libvips
          // computes pixels on its own worker thread: process CPU time.
          const double p0 = ProcessCpuSeconds();
          int shrink = 8;
          while (shrink > 1 && (d.crop.width / shrink < s || d.crop.height / shrink < s)) shrink /= 2;
          vips::VImage v = vips::VImage::new_from_buffer(
              jpegs[i].data(), jpegs[i].size(), "",
              vips::VImage::option()->set("shrink", shrink)->set("access",
                                                                  VIPS_ACCESS_SEQUENTIAL));
          const int vx = d.crop.x / shrink, vy = d.crop.y / shrink;
          v = v.extract_area(vx, vy, std::min(d.crop.width / shrink, v.width() - vx),
                             std::min(d.crop.height / shrink, v.height() - vy));
          size_t vips_bytes = 0;
          g_free(v.write_to_memory(&vips_bytes));
          t_vips += ProcessCpuSeconds() - p0;
        }
      }
      std::printf(
          "time per image (CPU): crop decode %.3f ms (DCT-scaled in %.0f%% of images), "
          "resize %.3f ms, colour %.3f ms\n",
          t_decode * 1e3 / n, 100.0 * scaled / n, t_resize * 1e3 / n, t_color * 1e3 / n);
      std::printf(
          "decode only (CPU, same crops): DCT-scaled crop decode %.3f ms, crop decode at "
          "full scale %.3f ms, libvips shrink-on-load + crop %.3f ms, full decode %.3f ms "
          "(full / DCT-scaled crop = %.2fx)\n",
          t_decode * 1e3 / n, t_nodct * 1e3 / n, t_vips * 1e3 / n, t_full * 1e3 / n,
          t_full / t_decode);
      result["breakdown_ms"] = {{"crop_decode", t_decode * 1e3 / n},
                                {"resize", t_resize * 1e3 / n},
                                {"color", t_color * 1e3 / n},
                                {"dct_scaled_fraction", static_cast<double>(scaled) / n}};
      result["decode_ms"] = {{"dct_scaled_crop", t_decode * 1e3 / n},
                             {"crop_full_scale", t_nodct * 1e3 / n},
                             {"vips_shrink_on_load_crop", t_vips * 1e3 / n},
                             {"full", t_full * 1e3 / n}};
    }

    // --- the whole pipeline, one preprocessing thread -----------------------------------
    if (args.batches > 0) {
      std::string work = args.work;
      bool remove = false;
      if (work.empty()) {
        std::string tmpl = (fs::temp_directory_path() / "retrain-bench-input-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        work = tmpl;
        remove = true;
      }
      WriteDataset(work, jpegs);
      InputPipeline::Options o;
      o.data_dir = work;
      o.split = "train";
      o.batch_size = 32;
      o.image_size = s;
      o.num_preprocess_threads = 1;
      o.num_readers = 4;
      o.input_queue_memory_factor = args.factor;
      o.seed = 1;
      {
        InputPipeline pipeline(o);
        Batch batch;
        pipeline.Next(&batch);  // fills the shuffle buffer, starts the threads
        const double c0 = ProcessCpuSeconds(), t0 = Now();
        int64_t n = 0;
        for (int b = 0; b < args.batches; ++b) {
          pipeline.Next(&batch);
          n += batch.size;
        }
        const double cpu = ProcessCpuSeconds() - c0, wall = Now() - t0;
        std::printf(
            "InputPipeline (1 preprocessing thread + reader, factor %d): %.1f images/s of "
            "process CPU time, %.1f images/s wall (%lld images)\n",
            args.factor, n / cpu, n / wall, static_cast<long long>(n));
        result["pipeline"] = {{"images", n},
                              {"cpu_s", cpu},
                              {"wall_s", wall},
                              {"images_per_cpu_s", n / cpu},
                              {"images_per_s", n / wall}};
      }
      if (remove) fs::remove_all(work);
    }
    std::printf("%s\n", result.dump().c_str());
  } catch (const TrainerError& e) {
    std::fprintf(stderr, "retrain-bench-input: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "retrain-bench-input: %s\n", e.what());
    return 1;
  }
  return 0;
}
