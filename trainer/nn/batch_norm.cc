#include "trainer/nn/batch_norm.h"

namespace retrain::trainer {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Training-mode batch norm over every rank's examples. The statistics are
// computed in fp32 whatever the input's type (as autocast runs batch norm).
class SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor input, torch::Tensor weight,
                               torch::Tensor bias, torch::Tensor running_mean,
                               torch::Tensor running_var, double eps, double momentum,
                               BatchNormSync* sync) {
    const torch::Tensor x = input.to(torch::kFloat32);
    const int64_t channels = x.size(1);
    const std::vector<int64_t> dims = {0, 2, 3};
    // One all-reduce: per-channel sums, sums of squares, and the count.
    torch::Tensor stats = torch::cat({x.sum(dims), (x * x).sum(dims),
                                      torch::full({1}, static_cast<double>(x.numel() / channels),
                                                  x.options())});
    sync->AllReduceSum(stats);
    const double count = stats[2 * channels].item<double>();
    const torch::Tensor mean = stats.slice(0, 0, channels) / count;
    const torch::Tensor var =
        (stats.slice(0, channels, 2 * channels) / count - mean * mean).clamp_min(0);
    const torch::Tensor invstd = (var + eps).rsqrt();
    {
      torch::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype()), momentum);
      const double unbiased = count > 1 ? count / (count - 1) : 1.0;
      running_var.mul_(1 - momentum).add_((var * unbiased).to(running_var.dtype()), momentum);
    }
    const torch::Tensor x_hat = (x - mean.view({1, -1, 1, 1})) * invstd.view({1, -1, 1, 1});
    ctx->save_for_backward({x_hat, weight, invstd});
    ctx->saved_data["count"] = count;
    ctx->saved_data["sync"] = reinterpret_cast<int64_t>(sync);
    ctx->saved_data["dtype"] = static_cast<int64_t>(input.scalar_type());
    torch::Tensor out = x_hat * weight.to(torch::kFloat32).view({1, -1, 1, 1}) +
                        bias.to(torch::kFloat32).view({1, -1, 1, 1});
    return out.to(input.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x_hat = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& invstd = saved[2];
    const double count = ctx->saved_data["count"].toDouble();
    auto* sync = reinterpret_cast<BatchNormSync*>(ctx->saved_data["sync"].toInt());
    const auto dtype = static_cast<torch::ScalarType>(ctx->saved_data["dtype"].toInt());
    const torch::Tensor dy = grad_outputs[0].to(torch::kFloat32);
    const int64_t channels = dy.size(1);
    const std::vector<int64_t> dims = {0, 2, 3};
    // This rank's share of the parameters' gradients; the data-parallel
    // reducer averages them over the ranks like every other gradient.
    const torch::Tensor grad_bias = dy.sum(dims);
    const torch::Tensor grad_weight = (dy * x_hat).sum(dims);
    // The input's gradient needs both terms summed over every rank.
    torch::Tensor terms = torch::cat({grad_bias, grad_weight});
    sync->AllReduceSum(terms);
    const torch::Tensor sum_dy = terms.slice(0, 0, channels).view({1, -1, 1, 1});
    const torch::Tensor sum_dy_xhat = terms.slice(0, channels, 2 * channels).view({1, -1, 1, 1});
    const torch::Tensor scale =
        (weight.to(torch::kFloat32) * invstd).view({1, -1, 1, 1});
    const torch::Tensor dx = scale * (dy - sum_dy / count - x_hat * sum_dy_xhat / count);
    return {dx.to(dtype),
            grad_weight.to(weight.scalar_type()),
            grad_bias.to(weight.scalar_type()),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

Norm2dImpl::Norm2dImpl(const torch::nn::BatchNorm2dOptions& options_) : options(options_) {
  TORCH_CHECK(options.affine() && options.track_running_stats() && options.momentum(),
              "Norm2d is affine, tracks running statistics and has a momentum");
  reset();
}

void Norm2dImpl::reset() {
  const int64_t n = options.num_features();
  weight = register_parameter("weight", torch::ones({n}));
  bias = register_parameter("bias", torch::zeros({n}));
  running_mean = register_buffer("running_mean", torch::zeros({n}));
  running_var = register_buffer("running_var", torch::ones({n}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
}

void Norm2dImpl::pretty_print(std::ostream& stream) const {
  stream << "Norm2d(" << options.num_features() << ", eps=" << options.eps()
         << ", momentum=" << options.momentum().value() << (sync_ ? ", synchronised" : "") << ")";
}

torch::Tensor Norm2dImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4, "Norm2d expects [N, C, H, W], got ", input.dim(), " dimensions");
  if (is_training()) {
    // Counted as torch counts it (the momentum is set, so it does not
    // enter the update).
    torch::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
  }
  if (!is_training() || !sync_ || sync_->world_size() <= 1) {
    return torch::batch_norm(input, weight, bias, running_mean, running_var, is_training(),
                             options.momentum().value(), options.eps(),
                             /*cudnn_enabled=*/true);
  }
  return SyncBatchNormFunction::apply(input, weight, bias, running_mean, running_var,
                                      options.eps(), options.momentum().value(), sync_.get());
}

int SynchroniseBatchNorm(torch::nn::Module& module, const std::shared_ptr<BatchNormSync>& sync) {
  int n = 0;
  for (const auto& m : module.modules(/*include_self=*/true)) {
    if (auto* norm = m->as<Norm2dImpl>()) {
      norm->set_sync(sync);
      ++n;
    }
  }
  return n;
}

}  // namespace retrain::trainer
