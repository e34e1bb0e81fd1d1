#include "trainer/spec/checkpoint_summary.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace retrain::trainer {

namespace fs = std::filesystem;

std::string CheckpointSummaryPath(const std::string& checkpoint_path) {
  return checkpoint_path + ".json";
}

bool WriteCheckpointSummary(const std::string& checkpoint_path, const CheckpointSummary& s) {
  const std::string path = CheckpointSummaryPath(checkpoint_path);
  // Hidden, like the checkpoint's own temporary name, so that nothing
  // listing the directory takes it for a finished file.
  const fs::path p(path);
  const std::string temp = (p.parent_path() / ("." + p.filename().string() + ".tmp")).string();
  {
    std::ofstream out(temp, std::ios::trunc);
    nlohmann::json labels = nlohmann::json::array();
    for (const auto& l : s.labels) labels.push_back({{"id", l.id}, {"name", l.name}});
    out << nlohmann::json{{"model", s.model},
                          {"num_classes", s.num_classes},
                          {"image_size", s.image_size},
                          {"step", s.step},
                          {"labels", labels}}
               .dump()
        << "\n";
    if (!out) return false;
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  return !ec;
}

std::optional<CheckpointSummary> ReadCheckpointSummary(const std::string& checkpoint_path) {
  std::ifstream in(CheckpointSummaryPath(checkpoint_path));
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  const auto j = nlohmann::json::parse(text.str(), nullptr, false);
  if (!j.is_object()) return std::nullopt;
  try {
    CheckpointSummary s;
    s.model = j.at("model").get<std::string>();
    s.num_classes = j.at("num_classes").get<int64_t>();
    s.image_size = j.at("image_size").get<int64_t>();
    s.step = j.at("step").get<int64_t>();
    for (const auto& l : j.value("labels", nlohmann::json::array())) {
      s.labels.push_back({l.at("id").get<int64_t>(), l.at("name").get<std::string>()});
    }
    return s;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::optional<CheckpointSummary> NewestCheckpointSummary(const std::string& dir) {
  std::optional<CheckpointSummary> newest;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("model.ckpt-", 0) != 0 || name.size() < 6 ||
        name.compare(name.size() - 5, 5, ".json") != 0) {
      continue;
    }
    const std::string checkpoint = e.path().string().substr(0, e.path().string().size() - 5);
    if (!fs::exists(checkpoint, ec)) continue;  // its checkpoint was removed
    auto s = ReadCheckpointSummary(checkpoint);
    if (s && (!newest || s->step > newest->step)) newest = s;
  }
  return newest;
}

}  // namespace retrain::trainer
