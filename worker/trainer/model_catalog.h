// The models retrain-trainer knows and their input sizes, without LibTorch:
// the coordinator checks training requests against it. nn/model.cc's
// registry builds exactly these (a test holds the two together).
#pragma once

#include <string>
#include <vector>

namespace retrain::trainer {

struct ModelInfo {
  std::string name;
  int default_image_size;  // pixels, square
};

inline const std::vector<ModelInfo>& ModelCatalog() {
  static const std::vector<ModelInfo> catalog{
      {"inception_v3", 299}, {"linear", 32}, {"resnet50", 224}, {"small", 32}};
  return catalog;
}

inline const ModelInfo* FindModelInfo(const std::string& name) {
  for (const auto& m : ModelCatalog()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

}  // namespace retrain::trainer
