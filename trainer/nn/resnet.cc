// ResNet-50 (v1.5: the stride sits in the 3x3 convolution) in torchvision's
// layout, names and initialisation: `conv1`, `bn1`, `layer1.0.conv1.weight`,
// `layer1.0.downsample.0.weight`, ..., `fc`. Batch norm keeps torchvision's
// epsilon 1e-5 and momentum 0.1: the reference's 0.9997 belongs to its
// Inception model.
#include <torch/torch.h>

#include <utility>

#include "trainer/nn/batch_norm.h"
#include "trainer/nn/model_zoo.h"

namespace retrain::trainer::detail {
namespace {

namespace nn = torch::nn;

constexpr int64_t kExpansion = 4;

nn::Conv2d ResNetConv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1,
                      int64_t padding = 0) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
}

class BottleneckImpl : public nn::Module {
 public:
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride)
      : conv1(ResNetConv(in, planes, 1)),
        bn1(planes),
        conv2(ResNetConv(planes, planes, 3, stride, 1)),
        bn2(planes),
        conv3(ResNetConv(planes, planes * kExpansion, 1)),
        bn3(planes * kExpansion) {
    register_module("conv1", conv1);
    register_module("bn1", bn1);
    register_module("conv2", conv2);
    register_module("bn2", bn2);
    register_module("conv3", conv3);
    register_module("bn3", bn3);
    if (stride != 1 || in != planes * kExpansion) {
      downsample = nn::Sequential(ResNetConv(in, planes * kExpansion, 1, stride),
                                  Norm2d(planes * kExpansion));
      register_module("downsample", downsample);
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = bn1(conv1(x)).relu_();
    y = bn2(conv2(y)).relu_();
    y = bn3(conv3(y));
    y += downsample.is_empty() ? x : downsample->forward(x);
    return torch::relu_(y);
  }

  nn::Conv2d conv1;
  Norm2d bn1;
  nn::Conv2d conv2;
  Norm2d bn2;
  nn::Conv2d conv3;
  Norm2d bn3;
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

class ResNet50 : public Model {
 public:
  explicit ResNet50(int num_classes)
      : Model("resnet50", num_classes, {"fc"}),
        conv1(ResNetConv(3, 64, 7, 2, 3)),
        bn1(64),
        fc(512 * kExpansion, num_classes) {
    register_module("conv1", conv1);
    register_module("bn1", bn1);
    layer1 = register_module("layer1", MakeLayer(64, 3, 1));
    layer2 = register_module("layer2", MakeLayer(128, 4, 2));
    layer3 = register_module("layer3", MakeLayer(256, 6, 2));
    layer4 = register_module("layer4", MakeLayer(512, 3, 2));
    register_module("fc", fc);

    // torchvision's, the linear layer at its default initialisation.
    KaimingInitialise_(*this);
  }

  int DefaultImageSize() const override { return 224; }

  ModelOutput Forward(const torch::Tensor& images) override {
    torch::Tensor x = bn1(conv1(images)).relu_();
    x = torch::max_pool2d(x, /*kernel_size=*/3, /*stride=*/2, /*padding=*/1);
    x = layer4->forward(layer3->forward(layer2->forward(layer1->forward(x))));
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    ModelOutput out;
    out.logits = fc(x);
    return out;
  }

 private:
  nn::Sequential MakeLayer(int64_t planes, int blocks, int64_t stride) {
    nn::Sequential layer;
    for (int i = 0; i < blocks; ++i) {
      layer->push_back(Bottleneck(inplanes_, planes, i == 0 ? stride : 1));
      inplanes_ = planes * kExpansion;
    }
    return layer;
  }

  int64_t inplanes_ = 64;
  nn::Conv2d conv1;
  Norm2d bn1;
  nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  nn::Linear fc;
};

}  // namespace

ModelPtr NewResNet50(int num_classes) { return std::make_shared<ResNet50>(num_classes); }

}  // namespace retrain::trainer::detail
