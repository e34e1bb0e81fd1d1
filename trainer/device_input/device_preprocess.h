// The second half of the GPU decode path: what ImagePreprocessor does after
// decoding (resample the crop, mirror, distort colours, scale to [-1, 1]),
// as tensor operations on the device that holds the decoded images.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "trainer/input/preprocess.h"

namespace retrain::trainer {

// Applies plans[i] to images[i] (uint8 [3, height, width], the whole image
// as decoded, plan.width x plan.height; all on one device) and returns the
// batch [N, 3, image_size, image_size] of floats in [-1, 1] on that device.
// Each crop is resampled as Resize() does, with BuildResampleMatrix()'s
// weights in two matrix products; colours then go through
// DistortColorsOnDevice(). On the same decoded pixels the result equals
// ImagePreprocessor's without DCT scaling, to float rounding. Throws
// TrainerError(kInternal) when an image's size is not its plan's.
torch::Tensor PreprocessDecoded(const std::vector<torch::Tensor>& images,
                                const std::vector<PreprocessPlan>& plans, int image_size);

// DistortColorInPlace() on images i with plans[i].distort_color and
// ScaleInPlace() on the others, for a float batch [N, 3, H, W] in [0, 1];
// returns the result (values in [-1, 1]).
torch::Tensor DistortColorsOnDevice(const torch::Tensor& batch,
                                    const std::vector<PreprocessPlan>& plans);

}  // namespace retrain::trainer
