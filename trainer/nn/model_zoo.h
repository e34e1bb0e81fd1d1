// Internal to retrain_trainer_nn: the constructors behind CreateModel(), one
// per model file. Use CreateModel() instead.
#pragma once

#include "trainer/nn/model.h"

namespace retrain::trainer::detail {

ModelPtr NewInceptionV3(int num_classes);
ModelPtr NewLinear(int num_classes);
ModelPtr NewResNet50(int num_classes);
ModelPtr NewSmallCnn(int num_classes);

}  // namespace retrain::trainer::detail
