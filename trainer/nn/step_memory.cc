#include "trainer/nn/step_memory.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include "trainer/nn/loss.h"
#include "trainer/nn/model.h"

namespace retrain::trainer {

namespace {

// Restores the CPU's default random stream when it goes: creating the probe
// model and its dropout draw from it.
class CpuRandomStateGuard {
 public:
  CpuRandomStateGuard() : generator_(at::detail::getDefaultCPUGenerator()) {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    state_ = generator_.get_state();
  }
  ~CpuRandomStateGuard() {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    generator_.set_state(state_);
  }
  CpuRandomStateGuard(const CpuRandomStateGuard&) = delete;
  CpuRandomStateGuard& operator=(const CpuRandomStateGuard&) = delete;

 private:
  at::Generator generator_;
  at::Tensor state_;
};

// The type LibTorch gives the running totals in reportMemoryUsage: int64_t
// up to 1.13, size_t in 2.x. Read from the base class's declaration so the
// override matches either.
template <typename Method>
struct ReportedTotal;
template <typename Base, typename Pointer, typename Size, typename Total, typename Device>
struct ReportedTotal<void (Base::*)(Pointer, Size, Total, Total, Device)> {
  using type = Total;
};
using ReportedTotalBytes =
    ReportedTotal<decltype(&c10::MemoryReportingInfoBase::reportMemoryUsage)>::type;

}  // namespace

// Counts the bytes allocated while it is installed and keeps the peak.
// Allocators call it from the installing thread and from the threads
// autograd hands its thread-local state to; hence the atomics.
class StepMemoryProbe::Counter final : public c10::MemoryReportingInfoBase {
 public:
  void reportMemoryUsage(void* /*ptr*/, int64_t alloc_size, ReportedTotalBytes /*total_allocated*/,
                         ReportedTotalBytes /*total_reserved*/, c10::Device /*device*/) override {
    const int64_t now = current_.fetch_add(alloc_size) + alloc_size;
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
  }
  bool memoryProfilingEnabled() const override { return true; }

  // Starts a new peak from what is allocated now.
  void ResetPeak() { peak_.store(current_.load()); }
  int64_t current() const { return current_.load(); }
  int64_t peak() const { return peak_.load(); }

 private:
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> peak_{0};
};

StepMemoryProbe::StepMemoryProbe(const std::string& model_name, int num_classes, int image_size,
                                 const torch::Device& device, Precision precision,
                                 torch::MemoryFormat memory_format)
    : counter_(std::make_shared<Counter>()),
      image_size_(image_size),
      device_(device),
      precision_(precision),
      memory_format_(memory_format) {
  CpuRandomStateGuard random_state;
  ModelPtr model = CreateModel(model_name, num_classes);
  for (const auto& p : model->parameters()) weights_bytes_ += p.numel() * p.element_size();
  for (const auto& b : model->buffers()) buffers_bytes_ += b.numel() * b.element_size();
  model->to(device);
  ApplyMemoryFormat(*model, memory_format);
  model->train();
  model_ = model;
}

StepMemoryProbe::~StepMemoryProbe() = default;

int64_t StepMemoryProbe::PeakOfPass(int batch) {
  TORCH_CHECK(batch >= 2, "StepMemoryProbe::PeakOfPass needs a batch of at least 2");
  auto& model = static_cast<Model&>(*model_);
  CpuRandomStateGuard random_state;
  c10::DebugInfoGuard guard(c10::DebugInfoKind::PROFILER_STATE, counter_);
  auto clear_gradients = [&] {
    for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
  };
  clear_gradients();
  const int64_t before = counter_->current();
  counter_->ResetPeak();
  try {
    auto images =
        torch::zeros({batch, 3, image_size_, image_size_}, torch::TensorOptions().device(device_))
            .contiguous(memory_format_);
    auto labels =
        torch::zeros({batch}, torch::TensorOptions().dtype(torch::kInt64).device(device_));
    ModelOutput out;
    {
      AutocastScope autocast(device_, precision_);
      out = model.Forward(images);
    }
    out.logits = out.logits.to(torch::kFloat32);
    if (out.aux_logits.defined()) out.aux_logits = out.aux_logits.to(torch::kFloat32);
    ComputeLoss(model, out, labels).total.backward();
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  } catch (...) {
    clear_gradients();
    throw;
  }
  const int64_t peak = counter_->peak() - before;
  clear_gradients();
  return peak;
}

StepMemory MeasureStepMemory(const std::string& model_name, int num_classes, int image_size,
                             const torch::Device& device, Precision precision,
                             torch::MemoryFormat memory_format, int batch_a, int batch_b) {
  TORCH_CHECK(batch_a >= 2 && batch_b > batch_a, "MeasureStepMemory needs 2 <= batch_a < batch_b");
  StepMemoryProbe probe(model_name, num_classes, image_size, device, precision, memory_format);
  StepMemory m;
  m.weights_bytes = probe.weights_bytes();
  m.buffers_bytes = probe.buffers_bytes();
  probe.PeakOfPass(batch_a);
  m.batch_a = batch_a;
  m.batch_b = batch_b;
  m.peak_a = probe.PeakOfPass(batch_a);
  m.peak_b = probe.PeakOfPass(batch_b);
  m.bytes_per_example = std::max<int64_t>(0, (m.peak_b - m.peak_a) / (batch_b - batch_a));
  m.fixed_bytes = std::max<int64_t>(0, m.peak_a - batch_a * m.bytes_per_example);
  return m;
}

int LargestFittingBatch(const std::function<bool(int)>& fits, int multiple, int max_batch) {
  // In units of `multiple`: the largest known to fit and the smallest known
  // not to.
  const int64_t limit = max_batch / multiple;
  if (limit < 1 || !fits(multiple)) return 0;
  int64_t good = 1, bad = limit + 1;
  while (good * 2 <= limit) {
    if (!fits(static_cast<int>(good * 2 * multiple))) {
      bad = good * 2;
      break;
    }
    good *= 2;
  }
  if (bad == limit + 1 && good < limit) {
    if (fits(static_cast<int>(limit * multiple))) return static_cast<int>(limit * multiple);
    bad = limit;
  }
  while (bad - good > 1) {
    const int64_t mid = good + (bad - good) / 2;
    if (fits(static_cast<int>(mid * multiple))) {
      good = mid;
    } else {
      bad = mid;
    }
  }
  return static_cast<int>(good * multiple);
}

}  // namespace retrain::trainer
