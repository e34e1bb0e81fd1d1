// retrain-bench-train: training throughput of retrain's LibTorch models.
//
//   retrain-bench-train [--model small] [--batch 64] [--image_size N]
//                       [--classes 10] [--threads 2] [--warmup 5] [--steps 30]
//                       [--repeats 3] [--seed 1] [--device cpu|cuda]
//
// Depends on retrain_trainer_nn only (no CLI11), so it also builds on GPU
// hosts that build nothing but the trainer.
// One training step is what the trainer does per batch: forward, loss
// (label-smoothed cross-entropy, 0.4 x auxiliary, L2 4e-5), clear gradients,
// backward, staircase learning rate, TensorFlow RMSProp step, weight-average
// update. Data is one synthetic batch (uniform in [-1, 1], random labels)
// made once, so the figure excludes the input pipeline. `warmup` steps run
// first, then `repeats` runs of `steps` timed steps; prints one JSON line:
//   {"impl":"cpp","model":...,"device":D,"batch":B,"image_size":S,"threads":T,
//    "steps":N,"steps_per_s":[...],"best_steps_per_s":X,"best_images_per_s":Y,
//    "final_loss":L}
// bench/train_throughput.py does the same in Python; bench/train_throughput.sh
// runs both and compares.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "common/system_memory.h"
#include "trainer/nn/learning_rate.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/model.h"
#include "trainer/nn/moving_average.h"
#include "trainer/nn/precision.h"
#include "trainer/nn/rmsprop_tf.h"
#include "trainer/trainer_error.h"

namespace {

using retrain::trainer::ApplyMemoryFormat;
using retrain::trainer::AutocastScope;
using retrain::trainer::ComputeLoss;
using retrain::trainer::CreateModel;
using retrain::trainer::ExponentialMovingAverage;
using retrain::trainer::LossTerms;
using retrain::trainer::ModelNames;
using retrain::trainer::ModelOutput;
using retrain::trainer::ModelPtr;
using retrain::trainer::ParsePrecision;
using retrain::trainer::Precision;
using retrain::trainer::RmsPropTf;
using retrain::trainer::RmsPropTfOptions;
using retrain::trainer::StaircaseLearningRate;

struct Options {
  std::string model = "small";
  int batch = 64;
  int image_size = 0;  // 0: the model's default
  int classes = 10;
  int threads = 2;
  int warmup = 5;
  int steps = 30;
  int repeats = 3;
  uint64_t seed = 1;
  std::string device = "cpu";
  std::string precision = "fp32";  // or bf16 (autocast, as retrain-trainer --precision)
  int channels_last = 0;           // 1: NHWC weights and input
};

// The reference's defaults: initial 0.1, decay by 0.16 every
// decay steps (kept short here so the schedule code runs).
constexpr double kInitialLearningRate = 0.1;
constexpr int64_t kDecaySteps = 1000;
constexpr double kDecayFactor = 0.16;

int Run(const Options& opt) {
  at::set_num_threads(opt.threads);
  torch::manual_seed(opt.seed);
  const torch::Device device(opt.device);
  ModelPtr model = CreateModel(opt.model, opt.classes);
  model->to(device);
  const auto format =
      opt.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  ApplyMemoryFormat(*model, format);
  const Precision precision = ParsePrecision(opt.precision);
  const int size = opt.image_size > 0 ? opt.image_size : model->DefaultImageSize();
  const torch::Tensor images =
      (torch::rand({opt.batch, 3, size, size}) * 2 - 1).to(device).contiguous(format);
  const torch::Tensor labels = torch::randint(opt.classes, {opt.batch}, torch::kLong).to(device);

  RmsPropTf optimizer(model->parameters(), RmsPropTfOptions(kInitialLearningRate));
  ExponentialMovingAverage averages(*model);
  int64_t step = 0;
  double loss = 0;
  auto train_step = [&] {
    ModelOutput output;
    {
      AutocastScope autocast(device, precision);
      output = model->Forward(images);
    }
    output.logits = output.logits.to(torch::kFloat32);
    if (output.aux_logits.defined()) output.aux_logits = output.aux_logits.to(torch::kFloat32);
    const LossTerms terms = ComputeLoss(*model, output, labels);
    optimizer.ClearGradients();
    terms.total.backward();
    optimizer.SetLearningRate(
        StaircaseLearningRate(step, kInitialLearningRate, kDecaySteps, kDecayFactor));
    optimizer.step();
    averages.Apply(step);
    ++step;
    return terms.total;
  };

  for (int i = 0; i < opt.warmup; ++i) train_step().item<double>();  // item(): wait for it
  std::vector<double> rates;
  for (int r = 0; r < opt.repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    torch::Tensor last;
    for (int i = 0; i < opt.steps; ++i) last = train_step();
    loss = last.item<double>();  // waits for the device
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rates.push_back(opt.steps / seconds);
  }
  const double best = *std::max_element(rates.begin(), rates.end());
  std::string list;
  for (double r : rates) list += (list.empty() ? "" : ",") + std::to_string(r);
  std::printf(
      "{\"impl\":\"cpp\",\"model\":\"%s\",\"device\":\"%s\",\"precision\":\"%s\","
      "\"channels_last\":%d,\"batch\":%d,\"image_size\":%d,"
      "\"threads\":%d,\"steps\":%d,\"steps_per_s\":[%s],\"best_steps_per_s\":%.4f,"
      "\"best_images_per_s\":%.2f,\"final_loss\":%.5f}\n",
      opt.model.c_str(), opt.device.c_str(), opt.precision.c_str(), opt.channels_last, opt.batch,
      size, opt.threads, opt.steps, list.c_str(),
      best, best * opt.batch, loss);
  return std::isfinite(loss) ? 0 : 1;
}

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr,
               "retrain-bench-train: %s\n"
               "usage: retrain-bench-train [--model small|resnet50|inception_v3] [--batch 64]\n"
               "  [--image_size 0] [--classes 10] [--threads 2] [--warmup 5] [--steps 30]\n"
               "  [--repeats 3] [--seed 1] [--device cpu|cuda] [--precision fp32|bf16]\n"
               "  [--channels_last 0|1]\n",
               error.c_str());
  std::exit(2);
}

// --key value or --key=value, each key once at most; numbers must be > 0
// except --image_size, --warmup and --seed (>= 0).
Options Parse(int argc, char** argv) {
  std::map<std::string, std::string> values;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") Usage("training steps/s on synthetic data");
    if (arg.rfind("--", 0) != 0) Usage("unexpected argument '" + arg + "'");
    std::string key = arg.substr(2), value;
    if (const size_t eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      Usage("--" + key + " needs a value");
    }
    values[key] = value;
  }
  Options opt;
  auto number = [&](const char* key, auto& out, long long min) {
    const auto it = values.find(key);
    if (it == values.end()) return;
    char* end = nullptr;
    const long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0' || v < min) {
      Usage(std::string("--") + key + " must be an integer >= " + std::to_string(min));
    }
    out = static_cast<std::remove_reference_t<decltype(out)>>(v);
    values.erase(it);
  };
  number("batch", opt.batch, 1);
  number("image_size", opt.image_size, 0);
  number("classes", opt.classes, 1);
  number("threads", opt.threads, 1);
  number("warmup", opt.warmup, 0);
  number("steps", opt.steps, 1);
  number("repeats", opt.repeats, 1);
  number("seed", opt.seed, 0);
  number("channels_last", opt.channels_last, 0);
  for (auto [key, field] : {std::pair<const char*, std::string*>{"model", &opt.model},
                            {"device", &opt.device},
                            {"precision", &opt.precision}}) {
    const auto it = values.find(key);
    if (it == values.end()) continue;
    *field = it->second;
    values.erase(it);
  }
  if (opt.precision != "fp32" && opt.precision != "bf16") Usage("--precision must be fp32 or bf16");
  if (!values.empty()) Usage("unknown option --" + values.begin()->first);
  const auto names = ModelNames();
  if (std::find(names.begin(), names.end(), opt.model) == names.end()) {
    Usage("unknown model '" + opt.model + "'");
  }
  if (opt.device != "cpu" && opt.device.rfind("cuda", 0) != 0) {
    Usage("--device must be cpu or cuda[:N]");
  }
  return opt;
}

}  // namespace

int main(int argc, char** argv) {
  retrain::KeepFreedMemoryForReuse(retrain::kTrainingHeapReuse);  // as retrain-trainer does
  const Options opt = Parse(argc, argv);
  try {
    return Run(opt);
  } catch (const retrain::trainer::TrainerError& e) {
    std::fprintf(stderr, "retrain-bench-train: %s\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "retrain-bench-train: LibTorch: %s\n", e.what_without_backtrace());
    return 2;
  }
}
