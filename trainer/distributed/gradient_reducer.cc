#include "trainer/distributed/gradient_reducer.h"

#include <chrono>

#include "trainer/trainer_error.h"

namespace retrain::trainer {

GradientReducer::GradientReducer(std::vector<torch::Tensor> params, Communicator& comm,
                                 int64_t bucket_bytes)
    : params_(std::move(params)), comm_(comm) {
  const size_t n = params_.size();
  bucket_of_.assign(n, 0);
  offset_of_.assign(n, 0);
  arrived_.assign(n, 0);
  if (n == 0) return;
  const auto options = params_.front().options().requires_grad(false);
  int64_t bucket_elements = 0;
  std::vector<size_t> current;
  auto close_bucket = [&] {
    if (current.empty()) return;
    Bucket b;
    b.flat = torch::zeros({bucket_elements}, options);
    b.params = current;
    buckets_.push_back(std::move(b));
    current.clear();
    bucket_elements = 0;
  };
  // Backward produces the last layers' gradients first.
  for (size_t k = n; k-- > 0;) {
    const torch::Tensor& p = params_[k];
    if (p.scalar_type() != params_.front().scalar_type() ||
        p.device() != params_.front().device()) {
      throw TrainerError(TrainerError::Kind::kInternal,
                         "gradient buckets need parameters of one dtype and device");
    }
    bucket_of_[k] = buckets_.size();
    offset_of_[k] = bucket_elements;
    current.push_back(k);
    bucket_elements += p.numel();
    if (bucket_elements * static_cast<int64_t>(p.element_size()) >= bucket_bytes) close_bucket();
  }
  close_bucket();
  for (size_t k = 0; k < n; ++k) {
    hooks_.push_back(params_[k].register_hook(
        [this, k](torch::Tensor grad) { OnGradient(k, grad); }));
  }
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < hooks_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

void GradientReducer::Prepare() {
  for (auto& b : buckets_) {
    b.pending = static_cast<int>(b.params.size());
    b.work.reset();
  }
  std::fill(arrived_.begin(), arrived_.end(), 0);
  next_to_launch_ = 0;
}

void GradientReducer::OnGradient(size_t param, const torch::Tensor& grad) {
  torch::NoGradGuard no_grad;
  Bucket& b = buckets_[bucket_of_[param]];
  b.flat.narrow(0, offset_of_[param], grad.numel()).copy_(grad.reshape({-1}));
  if (!arrived_[param]) {
    arrived_[param] = 1;
    --b.pending;
  }
  LaunchReadyBuckets();
}

void GradientReducer::LaunchReadyBuckets() {
  while (next_to_launch_ < buckets_.size() && buckets_[next_to_launch_].pending == 0) {
    Bucket& b = buckets_[next_to_launch_++];
    b.work = comm_.AllReduceSumAsync(b.flat);
  }
}

void GradientReducer::Finish() {
  torch::NoGradGuard no_grad;
  // Gradients that never came (parameters unused this step) count as zeros.
  for (auto& b : buckets_) {
    if (b.pending == 0) continue;
    for (size_t k : b.params) {
      if (!arrived_[k]) b.flat.narrow(0, offset_of_[k], params_[k].numel()).zero_();
    }
    b.pending = 0;
  }
  LaunchReadyBuckets();
  const auto start = std::chrono::steady_clock::now();
  for (auto& b : buckets_) comm_.Wait(b.work, "the gradient all-reduce");
  wait_seconds_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double scale = 1.0 / comm_.size();
  for (auto& b : buckets_) {
    b.flat.mul_(scale);
    for (size_t k : b.params) {
      if (!arrived_[k]) continue;
      torch::Tensor average = b.flat.narrow(0, offset_of_[k], params_[k].numel());
      torch::Tensor& grad = params_[k].mutable_grad();
      if (grad.defined()) {
        grad.copy_(average.view(grad.sizes()));
      } else {
        grad = average.view(params_[k].sizes()).clone();
      }
    }
    b.work.reset();
  }
}

double GradientReducer::TakeWaitSeconds() {
  const double s = wait_seconds_;
  wait_seconds_ = 0;
  return s;
}

}  // namespace retrain::trainer
