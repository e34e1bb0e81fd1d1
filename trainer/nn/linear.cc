// `linear`: a linear classifier on the pixels (multinomial logistic
// regression) of the image pooled to 32x32 (so any input size works). No batch norm and no dropout, so its
// training is a pure function of the batches: the data-parallel tests use
// it to show that N ranks of batch B/N end where one rank of batch B does.
// Also a baseline for small data sets.
#include <torch/torch.h>

#include "trainer/nn/model_zoo.h"

namespace retrain::trainer::detail {
namespace {

class LinearClassifier : public Model {
 public:
  explicit LinearClassifier(int num_classes)
      : Model("linear", num_classes, {"fc"}), fc(kSide * kSide * 3, num_classes) {
    register_module("fc", fc);
    torch::NoGradGuard no_grad;
    TruncatedNormal_(fc->weight, 0.01);
    fc->bias.zero_();
  }

  int DefaultImageSize() const override { return kSide; }

  ModelOutput Forward(const torch::Tensor& images) override {
    torch::Tensor x = images;
    if (x.size(2) != kSide || x.size(3) != kSide) {
      x = torch::adaptive_avg_pool2d(x, {kSide, kSide});
    }
    ModelOutput out;
    out.logits = fc(x.flatten(1));
    return out;
  }

 private:
  static constexpr int64_t kSide = 32;
  torch::nn::Linear fc;
};

}  // namespace

ModelPtr NewLinear(int num_classes) { return std::make_shared<LinearClassifier>(num_classes); }

}  // namespace retrain::trainer::detail
