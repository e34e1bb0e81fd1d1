#include "trainer/export_weights.h"

#include <map>
#include <nlohmann/json.hpp>

#include "trainer/checkpoint.h"
#include "trainer/spec/checkpoint_summary.h"
#include "trainer/input/safetensors_index.h"
#include "trainer/nn/model.h"
#include "trainer/safetensors_weights.h"
#include "trainer/trainer_error.h"
#include "trainer/trainer_log.h"

namespace retrain::trainer {

std::string ExportWeights(const ExportOptions& o) {
  if (!IsSafetensorsPath(o.out)) {
    throw TrainerError(TrainerError::Kind::kConfig,
                       "--out " + o.out + ": name a .safetensors file");
  }
  const std::string checkpoint = ChooseCheckpoint(o.checkpoint_dir, o.checkpoint);
  const CheckpointModel loaded = LoadCheckpointModel(checkpoint, !o.raw_weights);
  const CheckpointMeta& meta = loaded.meta;
  std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {kSafetensorsModelKey, meta.model},
      {"retrain.num_classes", std::to_string(meta.num_classes)},
      {"retrain.image_size", std::to_string(meta.image_size)},
      {"retrain.step", std::to_string(meta.step)},
      {"retrain.weights", o.raw_weights ? "raw" : "moving averages"}};
  if (auto summary = ReadCheckpointSummary(checkpoint); summary && !summary->labels.empty()) {
    nlohmann::json labels = nlohmann::json::object();
    for (const LabelInfo& l : summary->labels) labels[std::to_string(l.id)] = l.name;
    metadata["retrain.labels"] = labels.dump();
  }
  WriteSafetensors(o.out, NamedTensors(*loaded.model), metadata);
  LogInfo(Printf("wrote %s: the %s of %s (%s, %lld classes, step %lld)", o.out.c_str(),
                 o.raw_weights ? "weights" : "moving averages", checkpoint.c_str(),
                 meta.model.c_str(), static_cast<long long>(meta.num_classes),
                 static_cast<long long>(meta.step)));
  return checkpoint;
}

}  // namespace retrain::trainer
