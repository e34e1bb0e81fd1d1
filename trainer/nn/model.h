// The trainer's image classifiers behind one interface and one registry.
//
// A Model is a torch::nn::Module that maps a batch of images to logits (and,
// for Inception-v3 in training mode, auxiliary logits). Besides the forward
// pass it tells the training loop what the loop must treat specially:
//   - its classifier parameters (main and auxiliary logits layers), which
//     start fresh when fine-tuning from a checkpoint of another class count;
//   - which parameters are "weights" taking L2 decay (the weights of
//     convolution and fully connected layers; never biases nor batch-norm
//     parameters), as TF-slim's inception model does;
//   - its default input size.
//
// Models are created only through CreateModel(), which names every model the
// trainer knows. Not thread-safe: like any torch::nn::Module, one model is
// used by one thread at a time (or replicated per device).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace retrain::trainer {

// What a forward pass returns.
struct ModelOutput {
  // [N, num_classes] unnormalised class scores.
  torch::Tensor logits;
  // [N, num_classes] scores of the auxiliary head; defined only for models
  // that have one (inception_v3) and only in training mode, undefined
  // (`!aux_logits.defined()`) otherwise.
  torch::Tensor aux_logits;
};

class Model : public torch::nn::Module {
 public:
  ~Model() override = default;

  // images: [N, 3, H, W] float, scaled to [-1, 1] as the reference's input
  // pipeline does, H = W = DefaultImageSize() normally. Other sizes work
  // down to a minimum: inception_v3 299 px in training (its auxiliary head)
  // and 75 px in evaluation, resnet50 32 px, small 8 px; inception_v3 throws
  // TrainerError(kConfig) below it. Honors train()/eval(): dropout, batch
  // statistics and the auxiliary head are training-only.
  virtual ModelOutput Forward(const torch::Tensor& images) = 0;

  // Side in pixels of the square input the model was designed for.
  virtual int DefaultImageSize() const = 0;

  // The registry name (`inception_v3`, ...) and the number of classes it
  // was created with.
  const std::string& model_name() const { return model_name_; }
  int num_classes() const { return num_classes_; }

  // Names, as in named_parameters(), of the classifier layers' parameters:
  // weight and bias of the logits layer and, where there is one, of the
  // auxiliary logits layer. Sorted.
  const std::vector<std::string>& ClassifierParameterNames() const {
    return classifier_parameter_names_;
  }
  bool IsClassifierParameter(const std::string& name) const;

  // Whether the named parameter takes L2 weight decay: true exactly for the
  // `weight` of convolution and linear layers.
  bool IsDecayedWeight(const std::string& name) const;
  // Those parameters, in named_parameters() order.
  std::vector<torch::Tensor> DecayedWeights() const;

 protected:
  // `classifier_modules`: paths (as in named_modules()) of the logits layers.
  Model(std::string model_name, int num_classes, std::vector<std::string> classifier_modules);

 private:
  friend std::shared_ptr<Model> CreateModel(const std::string& name, int num_classes);

  // Walks the finished module tree; CreateModel calls it once after the
  // subclass constructor has registered every layer.
  void IndexParameters();

  // Constant after CreateModel returns.
  const std::string model_name_;
  const int num_classes_;
  const std::vector<std::string> classifier_modules_;
  std::vector<std::string> classifier_parameter_names_;
  std::set<std::string> decayed_weight_names_;
};

// Shared because that is how LibTorch owns modules: register_module(),
// Module::clone() and shared_from_this() all deal in shared_ptr.
using ModelPtr = std::shared_ptr<Model>;

// The names CreateModel accepts, sorted: inception_v3, resnet50, small.
std::vector<std::string> ModelNames();

// A freshly initialised model in training mode on the CPU. Throws
// TrainerError(kConfig) for an unknown name (the message lists the known
// ones) or num_classes < 1.
//   inception_v3  TF-slim's Inception-v3 as the reference trains it, laid out
//                 like torchvision's Inception3 (same parameter names):
//                 auxiliary head, batch norm epsilon 0.001 and decay 0.9997,
//                 dropout keeping 0.8 before the logits; 299 px.
//   resnet50      torchvision's resnet50 layout and initialisation; 224 px.
//   small         four conv + batch-norm layers and a linear classifier
//                 (about 70k parameters) for CPU runs and tests; 32 px.
ModelPtr CreateModel(const std::string& name, int num_classes);

namespace detail {
// Initialisers shared by the model files.
// TensorFlow's truncated normal: N(0, stddev) redrawn beyond 2 stddev.
void TruncatedNormal_(torch::Tensor& tensor, double stddev);
// torchvision's initialisation of convolutional networks, over every
// submodule of `model`: Kaiming normal convolutions (fan_out, ReLU), batch
// norm gamma 1 and beta 0.
void KaimingInitialise_(torch::nn::Module& model);
}  // namespace detail

}  // namespace retrain::trainer
