#include "trainer/classify.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "trainer/checkpoint.h"
#include "trainer/spec/checkpoint_summary.h"
#include "trainer/input/dataset_manifest.h"
#include "trainer/input/preprocess.h"
#include "trainer/nn/model.h"
#include "trainer/trainer_error.h"
#include "trainer/trainer_log.h"

namespace retrain::trainer {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void ConfigError(const std::string& message) {
  throw TrainerError(TrainerError::Kind::kConfig, message);
}

void CheckOptions(const ClassifyOptions& o) {
  if (o.inputs.empty()) ConfigError("name at least one JPEG file or directory to classify");
  if (o.top_k < 1) ConfigError("--top_k must be at least 1 (got " + std::to_string(o.top_k) + ")");
  if (o.batch_size < 1 || o.batch_size > 4096) {
    ConfigError("--batch_size must be in [1, 4096] (got " + std::to_string(o.batch_size) + ")");
  }
  if (o.output != "text" && o.output != "json") {
    ConfigError("--output must be text or json (got " + o.output + ")");
  }
  if (o.device != "auto" && o.device != "cpu" && o.device != "cuda") {
    ConfigError("--device must be auto, cpu or cuda (got " + o.device + ")");
  }
  if (o.device == "cuda" && !torch::cuda::is_available()) {
    ConfigError("--device cuda: LibTorch sees no CUDA device here; use --device cpu or auto");
  }
}

// The files to classify: each input file as given, each directory's
// non-hidden files below it in path order. A missing input is an error
// before any work.
std::vector<std::string> ListImages(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& input : inputs) {
    std::error_code ec;
    const auto status = fs::status(input, ec);
    if (ec || !fs::exists(status)) ConfigError(input + ": no such file or directory");
    if (!fs::is_directory(status)) {
      files.push_back(input);
      continue;
    }
    std::vector<std::string> found;
    fs::recursive_directory_iterator it(input, fs::directory_options::skip_permission_denied, ec),
        end;
    if (ec) ConfigError(input + ": cannot list the directory: " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) ConfigError(input + ": cannot list the directory: " + ec.message());
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec)) found.push_back(it->path().string());
    }
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

// Class id -> name: the checkpoint's summary, else the dataset's manifest;
// id 0 without a name of its own is the background class.
std::map<int64_t, std::string> ClassNames(const ClassifyOptions& o, const std::string& checkpoint,
                                          int64_t num_classes) {
  std::vector<LabelInfo> labels;
  if (auto summary = ReadCheckpointSummary(checkpoint); summary && !summary->labels.empty()) {
    labels = summary->labels;
  } else if (!o.data_dir.empty()) {
    const DatasetManifest manifest = LoadDatasetManifest(o.data_dir);
    if (manifest.num_classes != num_classes) {
      ConfigError(checkpoint + " has " + std::to_string(num_classes) + " classes and --data_dir " +
                  o.data_dir + " " + std::to_string(manifest.num_classes));
    }
    labels = manifest.labels;
  } else {
    LogWarning(checkpoint +
               " records no class names (written before they were kept): pass --data_dir, the "
               "dataset it was trained on, to name them");
  }
  std::map<int64_t, std::string> names;
  for (const auto& l : labels) names[l.id] = l.name;
  names.emplace(0, "background");
  return names;
}

// One image read into memory; `error` says why it could not be.
struct ImageFile {
  std::string path;
  std::string bytes;
  std::string error;
};

ImageFile ReadImageFile(const std::string& path) {
  ImageFile f{path, {}, {}};
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    f.error = path + ": cannot open: " + std::strerror(errno);
    return f;
  }
  std::ostringstream data;
  data << in.rdbuf();
  if (in.bad()) {
    f.error = path + ": cannot read: " + std::strerror(errno);
  } else if ((f.bytes = data.str()).empty()) {
    f.error = path + ": empty file";
  }
  return f;
}

class ResultWriter {
 public:
  ResultWriter(const ClassifyOptions& o, std::map<int64_t, std::string> names, std::ostream& out)
      : json_(o.output == "json"), names_(std::move(names)), out_(out) {}

  void Skipped(const ImageFile& f, const std::string& error) {
    if (json_) out_ << nlohmann::json{{"image", f.path}, {"error", error}}.dump() << "\n";
    std::cerr << "retrain-trainer: skipped " << error << "\n";
  }

  // `probabilities` and `labels`: the image's top k, most probable first.
  void Classified(const ImageFile& f, const float* probabilities, const int64_t* labels, int k) {
    nlohmann::json predictions = nlohmann::json::array();
    std::string line = f.path + ":";
    for (int i = 0; i < k; ++i) {
      const std::string name = NameOf(labels[i]);
      predictions.push_back({{"label", labels[i]},
                             {"name", name},
                             {"probability", std::round(probabilities[i] * 1e6) / 1e6}});
      line += Printf("%s %s %.1f%%", i == 0 ? "" : ",", name.c_str(), 100.0 * probabilities[i]);
    }
    if (json_) {
      out_ << nlohmann::json{{"image", f.path}, {"predictions", predictions}}.dump() << "\n";
    } else {
      out_ << line << "\n";
    }
  }

 private:
  std::string NameOf(int64_t label) const {
    auto it = names_.find(label);
    return it != names_.end() ? it->second : "class " + std::to_string(label);
  }

  const bool json_;
  const std::map<int64_t, std::string> names_;
  std::ostream& out_;
};

}  // namespace

ClassifyResult Classify(const ClassifyOptions& o, std::ostream& out) {
  CheckOptions(o);
  const std::vector<std::string> files = ListImages(o.inputs);
  const std::string checkpoint = ChooseCheckpoint(o.checkpoint_dir, o.checkpoint);
  CheckpointModel loaded = LoadCheckpointModel(checkpoint, /*use_moving_averages=*/true);
  const CheckpointMeta& meta = loaded.meta;
  ModelPtr model = loaded.model;
  model->eval();
  const bool cuda = o.device == "cuda" || (o.device == "auto" && torch::cuda::is_available());
  const torch::Device device(cuda ? torch::kCUDA : torch::kCPU);
  model->to(device);
  ResultWriter writer(o, ClassNames(o, checkpoint, meta.num_classes), out);
  LogInfo(Printf("classifying %zu file(s) with %s (%s, %lld classes, %lld px) on %s", files.size(),
                 checkpoint.c_str(), meta.model.c_str(), static_cast<long long>(meta.num_classes),
                 static_cast<long long>(meta.image_size), device.str().c_str()));

  ImagePreprocessor::Options po;
  po.image_size = static_cast<int>(meta.image_size);
  po.source = ImageSource::kFile;
  ImagePreprocessor preprocessor(po);
  const int64_t side = meta.image_size, pixels = 3 * side * side;
  const int k = static_cast<int>(std::min<int64_t>(o.top_k, meta.num_classes));
  std::vector<float> batch(static_cast<size_t>(o.batch_size * pixels));
  std::vector<ImageFile> in_batch;
  ClassifyResult result;
  torch::NoGradGuard no_grad;
  auto run_batch = [&] {
    if (in_batch.empty()) return;
    const auto n = static_cast<int64_t>(in_batch.size());
    auto images = torch::from_blob(batch.data(), {n, 3, side, side}, torch::kFloat32).to(device);
    auto top = torch::softmax(model->Forward(images).logits.to(torch::kFloat32), 1).topk(k, 1);
    const auto probabilities = std::get<0>(top).cpu().contiguous();
    const auto labels = std::get<1>(top).cpu().contiguous();
    for (int64_t i = 0; i < n; ++i) {
      writer.Classified(in_batch[static_cast<size_t>(i)], probabilities.data_ptr<float>() + i * k,
                        labels.data_ptr<int64_t>() + i * k, k);
    }
    result.classified += n;
    in_batch.clear();
  };
  for (const auto& path : files) {
    ImageFile f = ReadImageFile(path);
    if (f.error.empty()) {
      try {
        preprocessor.Eval(reinterpret_cast<const uint8_t*>(f.bytes.data()), f.bytes.size(),
                          batch.data() + in_batch.size() * static_cast<size_t>(pixels), path);
      } catch (const TrainerError& e) {
        if (e.kind() != TrainerError::Kind::kData) throw;
        f.error = e.what();
      }
    }
    if (!f.error.empty()) {
      // Results stay in input order: what is batched goes out first.
      run_batch();
      writer.Skipped(f, f.error);
      ++result.skipped;
      continue;
    }
    f.bytes.clear();
    in_batch.push_back(std::move(f));
    if (static_cast<int>(in_batch.size()) == o.batch_size) run_batch();
  }
  run_batch();
  LogInfo(Printf("classified %lld image(s), skipped %lld",
                 static_cast<long long>(result.classified),
                 static_cast<long long>(result.skipped)));
  return result;
}

}  // namespace retrain::trainer
