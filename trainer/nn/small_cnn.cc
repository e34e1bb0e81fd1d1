// `small`: a four-layer convolutional network for CPU runs, tests and
// benchmarks on MNIST-size images (28..32 px; any size from 8 px works).
//
//   conv1 3x3  3->32  stride 1 | bn1 | ReLU      32x32
//   conv2 3x3 32->32  stride 2 | bn2 | ReLU      16x16
//   conv3 3x3 32->64  stride 1 | bn3 | ReLU      16x16
//   conv4 3x3 64->64  stride 2 | bn4 | ReLU       8x8
//   average pool to 2x2, dropout keeping 0.8, fc 256->num_classes
//
// About 68k weights (10 classes) and 10 M multiply-adds per 32 px image. The
// 2x2 pool keeps coarse position, which digits need: global pooling cost
// about a point of MNIST accuracy. Batch norm uses
// epsilon 0.001 and momentum 0.1 (TF decay 0.9): short runs need moving
// statistics that settle within a few hundred steps. bench/train_throughput.py
// defines the same network in Python; keep the two in step.
#include <torch/torch.h>

#include "trainer/nn/batch_norm.h"
#include "trainer/nn/model_zoo.h"

namespace retrain::trainer::detail {
namespace {

namespace nn = torch::nn;

constexpr double kSmallCnnNormEpsilon = 0.001;
constexpr double kSmallCnnNormMomentum = 0.1;

nn::Conv2d Conv3x3(int64_t in, int64_t out, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

Norm2d Norm(int64_t channels) {
  return Norm2d(
      nn::BatchNorm2dOptions(channels).eps(kSmallCnnNormEpsilon).momentum(kSmallCnnNormMomentum));
}

class SmallCnn : public Model {
 public:
  explicit SmallCnn(int num_classes)
      : Model("small", num_classes, {"fc"}),
        conv1(Conv3x3(3, 32, 1)),
        bn1(Norm(32)),
        conv2(Conv3x3(32, 32, 2)),
        bn2(Norm(32)),
        conv3(Conv3x3(32, 64, 1)),
        bn3(Norm(64)),
        conv4(Conv3x3(64, 64, 2)),
        bn4(Norm(64)),
        dropout(0.2),
        fc(64 * 4, num_classes) {
    register_module("conv1", conv1);
    register_module("bn1", bn1);
    register_module("conv2", conv2);
    register_module("bn2", bn2);
    register_module("conv3", conv3);
    register_module("bn3", bn3);
    register_module("conv4", conv4);
    register_module("bn4", bn4);
    register_module("dropout", dropout);
    register_module("fc", fc);
    KaimingInitialise_(*this);  // the batch norms are at gamma 1, beta 0 already
    TruncatedNormal_(fc->weight, 0.01);
    torch::NoGradGuard no_grad;
    fc->bias.zero_();
  }

  int DefaultImageSize() const override { return 32; }

  ModelOutput Forward(const torch::Tensor& images) override {
    torch::Tensor x = bn1(conv1(images)).relu_();
    x = bn2(conv2(x)).relu_();
    x = bn3(conv3(x)).relu_();
    x = bn4(conv4(x)).relu_();
    x = torch::adaptive_avg_pool2d(x, {2, 2}).flatten(1);
    ModelOutput out;
    out.logits = fc(dropout(x));
    return out;
  }

 private:
  nn::Conv2d conv1;
  Norm2d bn1;
  nn::Conv2d conv2;
  Norm2d bn2;
  nn::Conv2d conv3;
  Norm2d bn3;
  nn::Conv2d conv4;
  Norm2d bn4;
  nn::Dropout dropout;
  nn::Linear fc;
};

}  // namespace

ModelPtr NewSmallCnn(int num_classes) { return std::make_shared<SmallCnn>(num_classes); }

}  // namespace retrain::trainer::detail
