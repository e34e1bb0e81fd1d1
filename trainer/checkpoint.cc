#include "trainer/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "trainer/spec/checkpoint_summary.h"
#include "trainer/input/safetensors_index.h"
#include "trainer/safetensors_weights.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "model.ckpt-";

int64_t StepOf(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return -1;
  const std::string digits = name.substr(std::string(kPrefix).size());
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  return std::stoll(digits);
}

void WriteMeta(torch::serialize::OutputArchive& archive, const CheckpointMeta& m) {
  archive.write("meta/model", c10::IValue(m.model));
  archive.write("meta/num_classes", c10::IValue(m.num_classes));
  archive.write("meta/image_size", c10::IValue(m.image_size));
  archive.write("meta/step", c10::IValue(m.step));
  archive.write("meta/input_position", c10::IValue(m.input_position));
  archive.write("meta/seed", c10::IValue(m.seed));
}

int64_t ReadInt(torch::serialize::InputArchive& archive, const char* key) {
  c10::IValue v;
  archive.read(key, v);
  return v.toInt();
}

CheckpointMeta ReadMeta(torch::serialize::InputArchive& archive) {
  CheckpointMeta m;
  c10::IValue model;
  archive.read("meta/model", model);
  m.model = model.toStringRef();
  m.num_classes = ReadInt(archive, "meta/num_classes");
  m.image_size = ReadInt(archive, "meta/image_size");
  m.step = ReadInt(archive, "meta/step");
  c10::IValue position;
  archive.read("meta/input_position", position);
  m.input_position = position.toStringRef();
  m.seed = ReadInt(archive, "meta/seed");
  return m;
}

void LoadArchive(const std::string& path, torch::serialize::InputArchive& archive) {
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw TrainerError(TrainerError::Kind::kData,
                       path + ": not a readable retrain checkpoint (" +
                           std::string(e.what_without_backtrace()).substr(0, 200) + ")");
  }
}

// ReadMeta() for a file at `path`: TrainerError(kData) when it has none.
CheckpointMeta ReadMetaOf(const std::string& path, torch::serialize::InputArchive& archive) {
  try {
    return ReadMeta(archive);
  } catch (const c10::Error&) {
    throw TrainerError(TrainerError::Kind::kData, path + ": not a retrain checkpoint (no meta data)");
  }
}

// The model `meta` describes, with the weights of `archive` (or their moving
// averages) in it. Throws TrainerError(kData) for a damaged archive.
ModelPtr ReadSavedModel(const std::string& path, torch::serialize::InputArchive& archive,
                        const CheckpointMeta& meta, bool use_moving_averages) {
  ModelPtr saved = CreateModel(meta.model, static_cast<int>(meta.num_classes));
  try {
    torch::serialize::InputArchive weights;
    archive.read("model", weights);
    saved->load(weights);
    if (use_moving_averages) {
      ExponentialMovingAverage ema(*saved);
      torch::serialize::InputArchive averages;
      archive.read("ema", averages);
      ema.load(averages);
      ema.CopyTo(*saved);
    }
  } catch (const c10::Error& e) {
    throw TrainerError(TrainerError::Kind::kData,
                       path + ": damaged checkpoint: " +
                           std::string(e.what_without_backtrace()).substr(0, 200));
  }
  return saved;
}

}  // namespace

CheckpointManager::CheckpointManager(std::string dir, int keep)
    : dir_(std::move(dir)), keep_(std::max(1, keep)) {}

std::vector<std::string> CheckpointManager::List() const {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const int64_t step = StepOf(e.path().filename().string());
    if (step >= 0 && e.is_regular_file()) found.emplace_back(step, e.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& [step, path] : found) out.push_back(std::move(path));
  return out;
}

void CheckpointManager::RemoveAbandonedTemporaries() const {
  std::error_code ec;
  std::vector<fs::path> abandoned;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    const bool checkpoint_temp = name.rfind(std::string(".") + kPrefix, 0) == 0 &&
                                 name.find(".tmp") != std::string::npos;
    if (checkpoint_temp || name == ".checkpoint.tmp") abandoned.push_back(e.path());
  }
  for (const auto& path : abandoned) fs::remove(path, ec);
}

std::optional<std::string> CheckpointManager::Latest() const {
  auto all = List();
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::string CheckpointManager::Save(const CheckpointMeta& meta, Model& model,
                                    const ExponentialMovingAverage& ema,
                                    const RmsPropTf& optimizer) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  const std::string name = kPrefix + std::to_string(meta.step);
  const std::string path = dir_ + "/" + name;
  std::random_device rd;
  const std::string temp = dir_ + "/." + name + ".tmp-" + std::to_string(rd());
  try {
    torch::serialize::OutputArchive archive;
    WriteMeta(archive, meta);
    torch::serialize::OutputArchive weights, averages, state;
    model.save(weights);
    ema.save(averages);
    optimizer.save(state);
    archive.write("model", weights);
    archive.write("ema", averages);
    archive.write("optimizer", state);
    archive.save_to(temp);
  } catch (const c10::Error& e) {
    fs::remove(temp, ec);
    throw TrainerError(TrainerError::Kind::kConfig,
                       "cannot write checkpoint " + path + ": " + e.what_without_backtrace());
  }
  // The summary first: a checkpoint never exists without it.
  if (!WriteCheckpointSummary(
          path, {meta.model, meta.num_classes, meta.image_size, meta.step, meta.labels})) {
    fs::remove(temp, ec);
    throw TrainerError(TrainerError::Kind::kConfig,
                       "cannot write " + CheckpointSummaryPath(path) + " in --train_dir");
  }
  fs::rename(temp, path, ec);
  if (ec) {
    fs::remove(temp, ec);
    throw TrainerError(TrainerError::Kind::kConfig,
                       "cannot write checkpoint " + path + ": " + ec.message());
  }
  {
    const std::string index_temp = dir_ + "/.checkpoint.tmp";
    std::ofstream(index_temp) << "model_checkpoint_path: \"" << name << "\"\n";
    fs::rename(index_temp, dir_ + "/checkpoint", ec);
  }
  auto all = List();
  for (size_t i = 0; i + keep_ < all.size(); ++i) {
    fs::remove(all[i], ec);
    fs::remove(CheckpointSummaryPath(all[i]), ec);
  }
  return path;
}

CheckpointMeta ReadCheckpointMeta(const std::string& path) {
  torch::serialize::InputArchive archive;
  LoadArchive(path, archive);
  return ReadMetaOf(path, archive);
}

CheckpointModel LoadCheckpointModel(const std::string& path, bool use_moving_averages) {
  torch::serialize::InputArchive archive;
  LoadArchive(path, archive);
  CheckpointModel loaded;
  loaded.meta = ReadMetaOf(path, archive);
  loaded.model = ReadSavedModel(path, archive, loaded.meta, use_moving_averages);
  return loaded;
}

void RestoreCheckpoint(const std::string& path, Model& model, ExponentialMovingAverage* ema,
                       RmsPropTf* optimizer) {
  torch::serialize::InputArchive archive;
  LoadArchive(path, archive);
  const CheckpointMeta meta = ReadMeta(archive);
  if (meta.model != model.model_name() || meta.num_classes != model.num_classes()) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       path + " holds a " + meta.model + " with " +
                           std::to_string(meta.num_classes) + " classes, but this run trains a " +
                           model.model_name() + " with " + std::to_string(model.num_classes()) +
                           "; use another --train_dir, or the same --model and dataset");
  }
  try {
    torch::serialize::InputArchive weights, averages, state;
    archive.read("model", weights);
    model.load(weights);
    if (ema != nullptr) {
      archive.read("ema", averages);
      ema->load(averages);
    }
    if (optimizer != nullptr) {
      archive.read("optimizer", state);
      optimizer->load(state);
    }
  } catch (const c10::Error& e) {
    throw TrainerError(TrainerError::Kind::kData,
                       path + ": damaged checkpoint: " +
                           std::string(e.what_without_backtrace()).substr(0, 200));
  }
}

std::string ChooseCheckpoint(const std::string& checkpoint_dir, const std::string& checkpoint) {
  auto fail = [](const std::string& message) {
    throw TrainerError(TrainerError::Kind::kConfig, message);
  };
  if (checkpoint_dir.empty() == checkpoint.empty()) {
    fail("give one of --checkpoint_dir (its newest checkpoint) or --checkpoint");
  }
  if (!checkpoint.empty()) {
    if (fs::is_directory(checkpoint)) {
      fail("--checkpoint " + checkpoint +
           " is a directory: pass it as --checkpoint_dir to use its newest checkpoint");
    }
    if (!fs::is_regular_file(checkpoint)) fail("--checkpoint " + checkpoint + ": no such file");
    if (IsSafetensorsPath(checkpoint)) {
      fail("--checkpoint " + checkpoint +
           " holds weights only, without the model, classes and image size of a checkpoint: "
           "start a run from it with --pretrained_model_checkpoint_path");
    }
    return checkpoint;
  }
  auto latest = CheckpointManager(checkpoint_dir, 1 << 30).Latest();
  if (!latest) fail("--checkpoint_dir " + checkpoint_dir + " holds no checkpoint");
  return *latest;
}

void LoadWeights(const std::string& path, Model& model, bool skip_classifier,
                 bool use_moving_averages) {
  if (IsSafetensorsPath(path)) {
    // Weights only, from elsewhere: no moving averages to choose from.
    LoadSafetensorsWeights(path, model, skip_classifier);
    return;
  }
  torch::serialize::InputArchive archive;
  LoadArchive(path, archive);
  const CheckpointMeta meta = ReadMetaOf(path, archive);
  if (meta.model != model.model_name()) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       path + " holds a " + meta.model + ", not a " + model.model_name() +
                           "; pass the same --model");
  }
  if (!skip_classifier && meta.num_classes != model.num_classes()) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       path + " was trained with " + std::to_string(meta.num_classes) +
                           " classes and this dataset has " + std::to_string(model.num_classes()) +
                           "; pass --fine_tune to start the classifier layers fresh");
  }
  // The checkpoint's own model, restored whole, then copied over by name.
  ModelPtr saved = ReadSavedModel(path, archive, meta, use_moving_averages);
  torch::NoGradGuard no_grad;
  auto source_params = saved->named_parameters();
  for (auto& p : model.named_parameters()) {
    if (skip_classifier && model.IsClassifierParameter(p.key())) continue;
    p.value().copy_(source_params[p.key()]);
  }
  auto source_buffers = saved->named_buffers();
  for (auto& b : model.named_buffers()) b.value().copy_(source_buffers[b.key()]);
}

}  // namespace retrain::trainer
