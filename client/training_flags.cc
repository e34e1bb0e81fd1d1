#include "client/training_flags.h"

#include <cstdint>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "trainer/spec/model_catalog.h"
#include "trainer/spec/training_knobs.h"

namespace retrain::client {

namespace v1 = retrain::v1;
using google::protobuf::FieldDescriptor;

struct TrainingFlags::Flag {
  const FieldDescriptor* field = nullptr;
  CLI::Option* option = nullptr;
  int32_t int32_value = 0;
  int64_t int64_value = 0;
  uint64_t uint64_value = 0;
  double double_value = 0;
  std::string string_value;
  bool bool_value = false;
};

namespace {

std::string ModelNames() {
  std::string names;
  for (const auto& m : trainer::ModelCatalog()) {
    absl::StrAppend(&names, names.empty() ? "" : ", ", m.name,
                    m.name == "inception_v3" ? " (default)" : "");
  }
  return names;
}

// The help line of each flag that has one; the field's comment in
// proto/retrain/v1/training.proto says the rest.
const std::map<std::string, std::string>& HelpLines() {
  namespace spec = trainer::spec;
  static const auto* help = new std::map<std::string, std::string>{
      {"data_dir", "Dataset directory (holds dataset.json)"},
      {"train_dir", "Checkpoints and event files"},
      {"model", ModelNames()},
      {"batch_size", absl::StrCat("Examples per step (default ", spec::kDefaultBatchSize, ")")},
      {"max_steps", "Steps to train"},
      {"num_epochs", "Or epochs to train"},
      {"image_size", "Default: the model's"},
      {"input_queue_memory_factor",
       absl::StrCat("Shuffle buffer of 1024 x factor records (default ",
                    spec::kDefaultInputQueueMemoryFactor, ")")},
      {"num_preprocess_threads",
       absl::StrCat("Decode threads (default ", spec::kDefaultNumPreprocessThreads, ")")},
      {"num_readers",
       absl::StrCat("Shards read at once (default ", spec::kDefaultNumReaders, ")")},
      {"num_gpus", "GPU ranks per worker"},
      {"num_replicas", "CPU ranks per worker"},
      {"num_workers", "Workers the job spans, started together (default 1)"},
      {"initial_learning_rate", "Learning rate of the first step"},
      {"num_epochs_per_decay", "Epochs between learning-rate decays"},
      {"learning_rate_decay_factor", "What each decay multiplies the learning rate by"},
      {"rmsprop_decay", "RMSProp's decay"},
      {"momentum", "RMSProp's momentum"},
      {"rmsprop_epsilon", "RMSProp's epsilon"},
      {"seed", "Seeds the shard order, shuffling, augmentation and initial weights"},
      {"checkpoint_every_steps", "Write a checkpoint every N steps"},
      {"checkpoint_every_secs", "Or every N seconds"},
      {"fine_tune", "Classifier layers start fresh"},
      {"sync_batch_norm",
       "Batch-norm statistics over every rank's examples of a step, not per rank"},
      {"skip_corrupt_records",
       "Skip damaged training records (logged with file and offset) instead of failing"},
      {"pretrained_model_checkpoint_path",
       "Start from these weights: a checkpoint (model.ckpt-N) or a .safetensors file "
       "(scripts/weights_to_safetensors.py)"},
      {"precision", spec::OneOf(spec::kPrecisions)},
      {"augmentation", absl::StrCat(spec::OneOf(spec::kAugmentations), " (default ",
                                    std::string(spec::kAugmentations[0]), ")")},
      {"decode",
       "Where JPEGs are decoded: auto (default: the CPU, the GPU once steps wait for input), "
       "cpu or gpu (nvJPEG; needs --num_gpus)"},
  };
  return *help;
}

bool IsPath(const FieldDescriptor& field) {
  return absl::EndsWith(field.name(), "_dir") || absl::EndsWith(field.name(), "_path");
}

}  // namespace

TrainingFlags::TrainingFlags(CLI::App* command) {
  const auto* descriptor = v1::TrainingSpec::descriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    auto flag = std::make_unique<Flag>();
    Flag& f = *flag;
    f.field = descriptor->field(i);
    const std::string name = "--" + f.field->name();
    const auto help = HelpLines().find(f.field->name());
    const std::string description = help != HelpLines().end() ? help->second : "";
    switch (f.field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_BOOL:
        f.option = command->add_flag(name, f.bool_value, description);
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        f.option = command->add_option(name, f.int32_value, description);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        f.option = command->add_option(name, f.int64_value, description);
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        f.option = command->add_option(name, f.uint64_value, description);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        f.option = command->add_option(name, f.double_value, description);
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        f.option = command->add_option(name, f.string_value, description);
        break;
      default:
        // A field of another type has no flag until this learns its type;
        // TrainingFlagsTest fails meanwhile.
        continue;
    }
    if (f.field->name() == "data_dir" || f.field->name() == "train_dir") f.option->required();
    flags_.push_back(std::move(flag));
  }
}

TrainingFlags::~TrainingFlags() = default;

v1::TrainingSpec TrainingFlags::Spec(
    const std::function<std::string(const std::string&)>& absolute) const {
  v1::TrainingSpec spec;
  const auto* reflection = spec.GetReflection();
  for (const auto& flag : flags_) {
    const Flag& f = *flag;
    if (f.option->count() == 0) continue;
    switch (f.field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_BOOL:
        reflection->SetBool(&spec, f.field, f.bool_value);
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        reflection->SetInt32(&spec, f.field, f.int32_value);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        reflection->SetInt64(&spec, f.field, f.int64_value);
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        reflection->SetUInt64(&spec, f.field, f.uint64_value);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        reflection->SetDouble(&spec, f.field, f.double_value);
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        reflection->SetString(&spec, f.field,
                              IsPath(*f.field) ? absolute(f.string_value) : f.string_value);
        break;
      default:
        break;
    }
  }
  return spec;
}

}  // namespace retrain::client
