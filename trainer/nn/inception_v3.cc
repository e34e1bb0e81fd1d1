// Inception-v3 as the reference (TF-slim's inception_model.py) trains it, in
// the module layout of torchvision's Inception3 so that parameter names match
// torchvision's (`Mixed_5b.branch1x1.conv.weight`, `AuxLogits.fc.bias`, ...).
//
// Where the two differ, the reference wins:
//   - batch norm: epsilon 0.001, moving averages with decay 0.9997, i.e.
//     torch momentum 0.0003 (torchvision: momentum 0.1);
//   - dropout keeps 0.8 (p = 0.2) before the logits (torchvision: p = 0.5);
//   - initialisation: truncated normal, stddev 0.1 for convolutions, 0.01
//     for the auxiliary 5x5 convolution and the logits layer, 0.001 for the
//     auxiliary logits; zero biases;
//   - 3x3 average pools inside the blocks are TF's SAME pools, which average
//     over the valid pixels only (count_include_pad = false);
//   - no input transform: images arrive in [-1, 1].
// One deliberate difference stays: TF-slim's batch norm has no scale (gamma
// fixed at 1) while this one, like torchvision's, learns gamma. Keeping
// torchvision's parameter set lets torchvision checkpoints load; gamma takes
// no weight decay, and with a following ReLU it changes little.
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "trainer/nn/batch_norm.h"
#include "trainer/nn/model_zoo.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer::detail {
namespace {

namespace nn = torch::nn;

constexpr double kBatchNormEpsilon = 0.001;
constexpr double kBatchNormMomentum = 1.0 - 0.9997;  // torch's momentum is 1 - TF's decay
constexpr double kConvStddev = 0.1;
constexpr double kDropoutKeep = 0.8;

// conv (no bias) + batch norm + ReLU: TF-slim's conv2d with batch_norm_params.
class BasicConv2dImpl : public nn::Module {
 public:
  BasicConv2dImpl(int64_t in, int64_t out, torch::ExpandingArray<2> kernel,
                  torch::ExpandingArray<2> stride, torch::ExpandingArray<2> padding, double stddev)
      : conv(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false)),
        bn(nn::BatchNorm2dOptions(out).eps(kBatchNormEpsilon).momentum(kBatchNormMomentum)) {
    register_module("conv", conv);
    register_module("bn", bn);
    TruncatedNormal_(conv->weight, stddev);
  }
  torch::Tensor forward(const torch::Tensor& x) { return bn(conv(x)).relu_(); }

  nn::Conv2d conv;
  Norm2d bn;
};
TORCH_MODULE(BasicConv2d);

BasicConv2d Conv(int64_t in, int64_t out, torch::ExpandingArray<2> kernel,
                 torch::ExpandingArray<2> stride = 1, torch::ExpandingArray<2> padding = 0,
                 double stddev = kConvStddev) {
  return BasicConv2d(in, out, kernel, stride, padding, stddev);
}

// TF's 3x3 stride-1 SAME average pool.
torch::Tensor AvgPoolSame3x3(const torch::Tensor& x) {
  return torch::avg_pool2d(x, /*kernel_size=*/3, /*stride=*/1, /*padding=*/1, /*ceil_mode=*/false,
                           /*count_include_pad=*/false);
}

torch::Tensor MaxPool3x3Stride2(const torch::Tensor& x) {
  return torch::max_pool2d(x, /*kernel_size=*/3, /*stride=*/2);
}

class InceptionAImpl : public nn::Module {
 public:
  InceptionAImpl(int64_t in, int64_t pool_features)
      : branch1x1(Conv(in, 64, 1)),
        branch5x5_1(Conv(in, 48, 1)),
        branch5x5_2(Conv(48, 64, 5, 1, 2)),
        branch3x3dbl_1(Conv(in, 64, 1)),
        branch3x3dbl_2(Conv(64, 96, 3, 1, 1)),
        branch3x3dbl_3(Conv(96, 96, 3, 1, 1)),
        branch_pool(Conv(in, pool_features, 1)) {
    register_module("branch1x1", branch1x1);
    register_module("branch5x5_1", branch5x5_1);
    register_module("branch5x5_2", branch5x5_2);
    register_module("branch3x3dbl_1", branch3x3dbl_1);
    register_module("branch3x3dbl_2", branch3x3dbl_2);
    register_module("branch3x3dbl_3", branch3x3dbl_3);
    register_module("branch_pool", branch_pool);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat(
        {branch1x1(x), branch5x5_2(branch5x5_1(x)),
         branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x))), branch_pool(AvgPoolSame3x3(x))},
        1);
  }

  BasicConv2d branch1x1, branch5x5_1, branch5x5_2, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3,
      branch_pool;
};
TORCH_MODULE(InceptionA);

class InceptionBImpl : public nn::Module {
 public:
  explicit InceptionBImpl(int64_t in)
      : branch3x3(Conv(in, 384, 3, 2)),
        branch3x3dbl_1(Conv(in, 64, 1)),
        branch3x3dbl_2(Conv(64, 96, 3, 1, 1)),
        branch3x3dbl_3(Conv(96, 96, 3, 2)) {
    register_module("branch3x3", branch3x3);
    register_module("branch3x3dbl_1", branch3x3dbl_1);
    register_module("branch3x3dbl_2", branch3x3dbl_2);
    register_module("branch3x3dbl_3", branch3x3dbl_3);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat(
        {branch3x3(x), branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x))), MaxPool3x3Stride2(x)}, 1);
  }

  BasicConv2d branch3x3, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3;
};
TORCH_MODULE(InceptionB);

class InceptionCImpl : public nn::Module {
 public:
  InceptionCImpl(int64_t in, int64_t c7)
      : branch1x1(Conv(in, 192, 1)),
        branch7x7_1(Conv(in, c7, 1)),
        branch7x7_2(Conv(c7, c7, {1, 7}, 1, {0, 3})),
        branch7x7_3(Conv(c7, 192, {7, 1}, 1, {3, 0})),
        branch7x7dbl_1(Conv(in, c7, 1)),
        branch7x7dbl_2(Conv(c7, c7, {7, 1}, 1, {3, 0})),
        branch7x7dbl_3(Conv(c7, c7, {1, 7}, 1, {0, 3})),
        branch7x7dbl_4(Conv(c7, c7, {7, 1}, 1, {3, 0})),
        branch7x7dbl_5(Conv(c7, 192, {1, 7}, 1, {0, 3})),
        branch_pool(Conv(in, 192, 1)) {
    register_module("branch1x1", branch1x1);
    register_module("branch7x7_1", branch7x7_1);
    register_module("branch7x7_2", branch7x7_2);
    register_module("branch7x7_3", branch7x7_3);
    register_module("branch7x7dbl_1", branch7x7dbl_1);
    register_module("branch7x7dbl_2", branch7x7dbl_2);
    register_module("branch7x7dbl_3", branch7x7dbl_3);
    register_module("branch7x7dbl_4", branch7x7dbl_4);
    register_module("branch7x7dbl_5", branch7x7dbl_5);
    register_module("branch_pool", branch_pool);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor b7 = branch7x7_3(branch7x7_2(branch7x7_1(x)));
    torch::Tensor b7dbl =
        branch7x7dbl_5(branch7x7dbl_4(branch7x7dbl_3(branch7x7dbl_2(branch7x7dbl_1(x)))));
    return torch::cat({branch1x1(x), b7, b7dbl, branch_pool(AvgPoolSame3x3(x))}, 1);
  }

  BasicConv2d branch1x1, branch7x7_1, branch7x7_2, branch7x7_3, branch7x7dbl_1, branch7x7dbl_2,
      branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5, branch_pool;
};
TORCH_MODULE(InceptionC);

class InceptionDImpl : public nn::Module {
 public:
  explicit InceptionDImpl(int64_t in)
      : branch3x3_1(Conv(in, 192, 1)),
        branch3x3_2(Conv(192, 320, 3, 2)),
        branch7x7x3_1(Conv(in, 192, 1)),
        branch7x7x3_2(Conv(192, 192, {1, 7}, 1, {0, 3})),
        branch7x7x3_3(Conv(192, 192, {7, 1}, 1, {3, 0})),
        branch7x7x3_4(Conv(192, 192, 3, 2)) {
    register_module("branch3x3_1", branch3x3_1);
    register_module("branch3x3_2", branch3x3_2);
    register_module("branch7x7x3_1", branch7x7x3_1);
    register_module("branch7x7x3_2", branch7x7x3_2);
    register_module("branch7x7x3_3", branch7x7x3_3);
    register_module("branch7x7x3_4", branch7x7x3_4);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat(
        {branch3x3_2(branch3x3_1(x)), branch7x7x3_4(branch7x7x3_3(branch7x7x3_2(branch7x7x3_1(x)))),
         MaxPool3x3Stride2(x)},
        1);
  }

  BasicConv2d branch3x3_1, branch3x3_2, branch7x7x3_1, branch7x7x3_2, branch7x7x3_3, branch7x7x3_4;
};
TORCH_MODULE(InceptionD);

class InceptionEImpl : public nn::Module {
 public:
  explicit InceptionEImpl(int64_t in)
      : branch1x1(Conv(in, 320, 1)),
        branch3x3_1(Conv(in, 384, 1)),
        branch3x3_2a(Conv(384, 384, {1, 3}, 1, {0, 1})),
        branch3x3_2b(Conv(384, 384, {3, 1}, 1, {1, 0})),
        branch3x3dbl_1(Conv(in, 448, 1)),
        branch3x3dbl_2(Conv(448, 384, 3, 1, 1)),
        branch3x3dbl_3a(Conv(384, 384, {1, 3}, 1, {0, 1})),
        branch3x3dbl_3b(Conv(384, 384, {3, 1}, 1, {1, 0})),
        branch_pool(Conv(in, 192, 1)) {
    register_module("branch1x1", branch1x1);
    register_module("branch3x3_1", branch3x3_1);
    register_module("branch3x3_2a", branch3x3_2a);
    register_module("branch3x3_2b", branch3x3_2b);
    register_module("branch3x3dbl_1", branch3x3dbl_1);
    register_module("branch3x3dbl_2", branch3x3dbl_2);
    register_module("branch3x3dbl_3a", branch3x3dbl_3a);
    register_module("branch3x3dbl_3b", branch3x3dbl_3b);
    register_module("branch_pool", branch_pool);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor b3 = branch3x3_1(x);
    torch::Tensor b3dbl = branch3x3dbl_2(branch3x3dbl_1(x));
    return torch::cat({branch1x1(x), branch3x3_2a(b3), branch3x3_2b(b3), branch3x3dbl_3a(b3dbl),
                       branch3x3dbl_3b(b3dbl), branch_pool(AvgPoolSame3x3(x))},
                      1);
  }

  BasicConv2d branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b, branch3x3dbl_1, branch3x3dbl_2,
      branch3x3dbl_3a, branch3x3dbl_3b, branch_pool;
};
TORCH_MODULE(InceptionE);

class InceptionAuxImpl : public nn::Module {
 public:
  InceptionAuxImpl(int64_t in, int64_t num_classes)
      : conv0(Conv(in, 128, 1)),
        conv1(Conv(128, 768, 5, 1, 0, /*stddev=*/0.01)),
        fc(768, num_classes) {
    register_module("conv0", conv0);
    register_module("conv1", conv1);
    register_module("fc", fc);
    TruncatedNormal_(fc->weight, 0.001);
    torch::NoGradGuard no_grad;
    fc->bias.zero_();
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::avg_pool2d(x, /*kernel_size=*/5, /*stride=*/3);
    y = conv1(conv0(y));
    y = torch::adaptive_avg_pool2d(y, {1, 1}).flatten(1);
    return fc(y);
  }

  BasicConv2d conv0, conv1;
  nn::Linear fc;
};
TORCH_MODULE(InceptionAux);

class InceptionV3 : public Model {
 public:
  explicit InceptionV3(int num_classes)
      : Model("inception_v3", num_classes, {"AuxLogits.fc", "fc"}),
        Conv2d_1a_3x3(Conv(3, 32, 3, 2)),
        Conv2d_2a_3x3(Conv(32, 32, 3)),
        Conv2d_2b_3x3(Conv(32, 64, 3, 1, 1)),
        Conv2d_3b_1x1(Conv(64, 80, 1)),
        Conv2d_4a_3x3(Conv(80, 192, 3)),
        Mixed_5b(192, 32),
        Mixed_5c(256, 64),
        Mixed_5d(288, 64),
        Mixed_6a(288),
        Mixed_6b(768, 128),
        Mixed_6c(768, 160),
        Mixed_6d(768, 160),
        Mixed_6e(768, 192),
        AuxLogits(768, num_classes),
        Mixed_7a(768),
        Mixed_7b(1280),
        Mixed_7c(2048),
        dropout(1.0 - kDropoutKeep),
        fc(2048, num_classes) {
    register_module("Conv2d_1a_3x3", Conv2d_1a_3x3);
    register_module("Conv2d_2a_3x3", Conv2d_2a_3x3);
    register_module("Conv2d_2b_3x3", Conv2d_2b_3x3);
    register_module("Conv2d_3b_1x1", Conv2d_3b_1x1);
    register_module("Conv2d_4a_3x3", Conv2d_4a_3x3);
    register_module("Mixed_5b", Mixed_5b);
    register_module("Mixed_5c", Mixed_5c);
    register_module("Mixed_5d", Mixed_5d);
    register_module("Mixed_6a", Mixed_6a);
    register_module("Mixed_6b", Mixed_6b);
    register_module("Mixed_6c", Mixed_6c);
    register_module("Mixed_6d", Mixed_6d);
    register_module("Mixed_6e", Mixed_6e);
    register_module("AuxLogits", AuxLogits);
    register_module("Mixed_7a", Mixed_7a);
    register_module("Mixed_7b", Mixed_7b);
    register_module("Mixed_7c", Mixed_7c);
    register_module("dropout", dropout);
    register_module("fc", fc);
    TruncatedNormal_(fc->weight, 0.01);  // TF-slim's fc default
    torch::NoGradGuard no_grad;
    fc->bias.zero_();
  }

  int DefaultImageSize() const override { return 299; }

  ModelOutput Forward(const torch::Tensor& images) override {
    // The auxiliary head's 5x5 convolution needs Mixed_6e's 17x17 map, which
    // takes a 299 px input (TF-slim sized that kernel to the map; torchvision,
    // whose parameters these are, fixed it at 5x5). Without the head, 75 px.
    const int64_t min_size = is_training() ? 299 : 75;
    if (images.dim() != 4 || images.size(2) < min_size || images.size(3) < min_size) {
      throw TrainerError(TrainerError::Kind::kConfig,
                         "inception_v3 needs images of at least " + std::to_string(min_size) +
                             " px in " + (is_training() ? "training" : "evaluation") + ", got " +
                             c10::str(images.sizes()) + ": set --image_size to 299");
    }
    torch::Tensor x = Conv2d_2b_3x3(Conv2d_2a_3x3(Conv2d_1a_3x3(images)));  // 147x147
    x = MaxPool3x3Stride2(x);                                               // 73x73
    x = Conv2d_4a_3x3(Conv2d_3b_1x1(x));                                    // 71x71
    x = MaxPool3x3Stride2(x);                                               // 35x35
    x = Mixed_5d(Mixed_5c(Mixed_5b(x)));
    x = Mixed_6a(x);  // 17x17
    x = Mixed_6e(Mixed_6d(Mixed_6c(Mixed_6b(x))));
    ModelOutput out;
    if (is_training()) out.aux_logits = AuxLogits(x);
    x = Mixed_7c(Mixed_7b(Mixed_7a(x)));  // 8x8
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    out.logits = fc(dropout(x));
    return out;
  }

 private:
  BasicConv2d Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3, Conv2d_3b_1x1, Conv2d_4a_3x3;
  InceptionA Mixed_5b, Mixed_5c, Mixed_5d;
  InceptionB Mixed_6a;
  InceptionC Mixed_6b, Mixed_6c, Mixed_6d, Mixed_6e;
  InceptionAux AuxLogits;
  InceptionD Mixed_7a;
  InceptionE Mixed_7b, Mixed_7c;
  nn::Dropout dropout;
  nn::Linear fc;
};

}  // namespace

ModelPtr NewInceptionV3(int num_classes) { return std::make_shared<InceptionV3>(num_classes); }

}  // namespace retrain::trainer::detail
