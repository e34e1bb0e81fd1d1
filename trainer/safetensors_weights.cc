#include "trainer/safetensors_weights.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "trainer/input/safetensors_index.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

namespace fs = std::filesystem;

// The dtypes a weights file can hold (the rest are refused by name).
const std::vector<std::pair<std::string, torch::ScalarType>>& DtypeNames() {
  static const std::vector<std::pair<std::string, torch::ScalarType>> kNames = {
      {"F32", torch::kFloat},  {"F16", torch::kHalf}, {"BF16", torch::kBFloat16},
      {"F64", torch::kDouble}, {"I64", torch::kLong}, {"I32", torch::kInt},
      {"I16", torch::kShort},  {"I8", torch::kChar},  {"U8", torch::kByte},
      {"BOOL", torch::kBool}};
  return kNames;
}

std::string ShapeText(c10::IntArrayRef shape) {
  std::ostringstream out;
  out << shape;
  return out.str();
}

torch::Tensor ReadTensor(std::ifstream& in, const std::string& path, const std::string& name,
                         const SafetensorsEntry& e) {
  for (const auto& [dtype_name, dtype] : DtypeNames()) {
    if (dtype_name != e.dtype) continue;
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(dtype));
    in.seekg(static_cast<std::streamoff>(e.begin));
    if (!in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(e.end - e.begin))) {
      throw TrainerError(TrainerError::Kind::kData,
                         path + ": cannot read the bytes of tensor \"" + name + "\"");
    }
    return t;
  }
  throw TrainerError(TrainerError::Kind::kConfig,
                     path + ": tensor \"" + name + "\" is " + e.dtype + ", not a weights dtype");
}

// "a, b, c and 4 more".
std::string FirstNames(const std::vector<std::string>& names) {
  std::string text;
  const size_t shown = std::min<size_t>(names.size(), 3);
  for (size_t i = 0; i < shown; ++i) text += (i > 0 ? ", " : "") + names[i];
  if (names.size() > shown) text += " and " + std::to_string(names.size() - shown) + " more";
  return text;
}

bool IsBatchCounter(const std::string& name) {
  static const std::string kSuffix = "num_batches_tracked";
  return name.size() >= kSuffix.size() &&
         name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

}  // namespace

void LoadSafetensorsWeights(const std::string& path, Model& model, bool skip_classifier) {
  const SafetensorsIndex index = ReadSafetensorsIndex(path);
  const auto named_model = index.metadata.find(kSafetensorsModelKey);
  if (named_model != index.metadata.end() && named_model->second != model.model_name()) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       path + " holds the weights of a " + named_model->second + ", not a " +
                           model.model_name() + "; pass the same --model");
  }
  std::vector<std::string> missing;
  std::set<std::string> used;
  std::string wrong_shape;  // the first tensor whose shape differs
  // Each model tensor with the file's entry it is loaded from.
  struct Load {
    const std::string& name;
    torch::Tensor target;
    const SafetensorsEntry& entry;
  };
  std::vector<Load> loads;
  for (const auto& [name, target] : NamedTensors(model)) {
    const bool classifier = model.IsClassifierParameter(name);
    if (classifier && skip_classifier) {
      used.insert(name);
      continue;
    }
    const auto it = index.tensors.find(name);
    if (it == index.tensors.end()) {
      if (!IsBatchCounter(name)) missing.push_back(name);
      continue;
    }
    used.insert(name);
    loads.push_back({it->first, target, it->second});
    const c10::IntArrayRef want = target.sizes();
    if (c10::IntArrayRef(it->second.shape) == want || !wrong_shape.empty()) continue;
    if (classifier) {
      wrong_shape = path + ": its classifier " + name + " is " + ShapeText(it->second.shape) +
                    " and this run's is " + ShapeText(want) + " (" +
                    std::to_string(model.num_classes()) +
                    " classes); pass --fine_tune to start the classifier layers fresh";
    } else {
      wrong_shape = path + ": tensor " + name + " is " + ShapeText(it->second.shape) +
                    " and --model " + model.model_name() + "'s is " + ShapeText(want) +
                    ": the weights of another model";
    }
  }
  // Missing names say more than a shape (another model's weights differ in
  // both), so they are reported first.
  if (!missing.empty()) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       path + " lacks " + std::to_string(missing.size()) + " of --model " +
                           model.model_name() + "'s tensors (" + FirstNames(missing) +
                           "): the weights of another model, or names other than "
                           "torchvision's");
  }
  if (!wrong_shape.empty()) throw TrainerError(TrainerError::Kind::kConfig, wrong_shape);
  std::vector<std::string> unused;
  for (const auto& entry : index.tensors) {
    if (used.count(entry.first) == 0) unused.push_back(entry.first);
  }
  if (!unused.empty()) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       path + " holds " + std::to_string(unused.size()) +
                           " tensor(s) that --model " + model.model_name() + " does not have (" +
                           FirstNames(unused) + "): the weights of another model");
  }
  std::ifstream in(path, std::ios::binary);
  torch::NoGradGuard no_grad;
  for (Load& load : loads) load.target.copy_(ReadTensor(in, path, load.name, load.entry));
}

std::map<std::string, torch::Tensor> ReadSafetensors(const std::string& path) {
  const SafetensorsIndex index = ReadSafetensorsIndex(path);
  std::ifstream in(path, std::ios::binary);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, entry] : index.tensors) {
    tensors.emplace(name, ReadTensor(in, path, name, entry));
  }
  return tensors;
}

void WriteSafetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || header.contains(name)) {
      throw TrainerError(TrainerError::Kind::kInternal, "tensor name " + name + " given twice");
    }
    torch::Tensor t = tensor.detach().to(torch::kCPU);
    if (t.is_floating_point() && t.scalar_type() != torch::kHalf &&
        t.scalar_type() != torch::kBFloat16 && t.scalar_type() != torch::kDouble) {
      t = t.to(torch::kFloat);
    }
    t = t.contiguous();
    std::string dtype;
    for (const auto& [dtype_name, scalar] : DtypeNames()) {
      if (scalar == t.scalar_type()) dtype = dtype_name;
    }
    if (dtype.empty()) {
      throw TrainerError(TrainerError::Kind::kInternal,
                         "tensor " + name + " has a dtype safetensors does not define");
    }
    const uint64_t bytes = t.numel() * t.element_size();
    header[name] = {
        {"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(t);
  }
  std::string text = header.dump();
  // The data starts 8-byte aligned, as the format recommends.
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  const fs::path target(path);
  const fs::path temporary = target.parent_path() / ("." + target.filename().string() + ".tmp");
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    uint64_t length = text.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((length >> (8 * i)) & 0xff));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const torch::Tensor& t : data) {
      out.write(static_cast<const char*>(t.data_ptr()),
                static_cast<std::streamsize>(t.numel() * t.element_size()));
    }
    out.flush();
    if (!out) {
      std::error_code ignored;
      fs::remove(temporary, ignored);
      throw TrainerError(TrainerError::Kind::kConfig, path + ": cannot write the weights file");
    }
  }
  std::error_code error;
  fs::rename(temporary, target, error);
  if (error) {
    fs::remove(temporary, error);
    throw TrainerError(TrainerError::Kind::kConfig,
                       path + ": cannot write the weights file: " + error.message());
  }
}

std::vector<std::pair<std::string, torch::Tensor>> NamedTensors(const Model& model) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : model.named_parameters()) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) tensors.emplace_back(b.key(), b.value());
  return tensors;
}

}  // namespace retrain::trainer
