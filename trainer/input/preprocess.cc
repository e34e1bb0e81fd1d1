#include "trainer/input/preprocess.h"

#include <algorithm>
#include <cmath>

#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

// GenerateRandomCrop() of TensorFlow's sample_distorted_bounding_box_op.cc.
bool GenerateRandomCrop(int original_width, int original_height, float min_relative_crop_area,
                        float max_relative_crop_area, float aspect_ratio, CropRect* crop,
                        Rng* rng) {
  if (max_relative_crop_area <= 0.0f || aspect_ratio <= 0.0f || original_width <= 0 ||
      original_height <= 0 || min_relative_crop_area > max_relative_crop_area) {
    return false;
  }
  const float min_area =
      min_relative_crop_area * static_cast<float>(original_width) * original_height;
  const float max_area =
      max_relative_crop_area * static_cast<float>(original_width) * original_height;

  int height = static_cast<int>(std::lrint(std::sqrt(min_area / aspect_ratio)));
  int max_height = static_cast<int>(std::lrint(std::sqrt(max_area / aspect_ratio)));
  if (std::lrint(max_height * aspect_ratio) > original_width) {
    // The smallest max_height with round(max_height * aspect_ratio) <= width.
    constexpr float kEps = 0.0000001f;
    max_height = static_cast<int>((original_width + 0.5f - kEps) / aspect_ratio);
    if (std::lrint(max_height * aspect_ratio) > original_width) max_height -= 1;
  }
  if (max_height > original_height) max_height = original_height;
  if (height >= max_height) height = max_height;
  if (height < max_height) {
    height += static_cast<int>(rng->Uniform(static_cast<uint64_t>(max_height - height + 1)));
  }
  int width = static_cast<int>(std::lrint(height * aspect_ratio));

  // Rounding may leave the area just below the minimum: try slightly taller.
  float area = static_cast<float>(width) * height;
  for (int i = 0; i < 2 && area < min_area; ++i) {
    height += 1;
    width = static_cast<int>(std::lrint(height * aspect_ratio));
    area = static_cast<float>(width) * height;
  }
  if (area < min_area || area > max_area || width > original_width || height > original_height ||
      width <= 0 || height <= 0) {
    return false;
  }
  int y = 0;
  if (height < original_height) {
    y = static_cast<int>(rng->Uniform(static_cast<uint64_t>(original_height - height)));
  }
  int x = 0;
  if (width < original_width) {
    x = static_cast<int>(rng->Uniform(static_cast<uint64_t>(original_width - width)));
  }
  *crop = {x, y, width, height};
  return true;
}

}  // namespace

CropRect SampleDistortedBoundingBox(int width, int height, const DistortedBoxOptions& options,
                                    Rng* rng) {
  const CropRect image{0, 0, width, height};
  const double image_area = static_cast<double>(width) * height;
  for (int i = 0; i < options.max_attempts; ++i) {
    const float aspect =
        rng->UniformFloat() * (options.max_aspect_ratio - options.min_aspect_ratio) +
        options.min_aspect_ratio;
    CropRect crop;
    if (!GenerateRandomCrop(width, height, options.min_area, options.max_area, aspect, &crop,
                            rng)) {
      continue;
    }
    // SatisfiesOverlapConstraints with the whole image as the only box: the
    // crop lies inside it, so the covered fraction is the crop's area share.
    const double covered = static_cast<double>(crop.width) * crop.height / image_area;
    if (covered >= options.min_object_covered) return crop;
  }
  return image;
}

CropRect CentralCrop(int width, int height, double fraction) {
  if (fraction >= 1.0) return {0, 0, width, height};
  const int y = static_cast<int>((height - height * fraction) / 2);
  const int x = static_cast<int>((width - width * fraction) / 2);
  return {x, y, std::max(1, width - 2 * x), std::max(1, height - 2 * y)};
}

TrainDistortion DrawTrainDistortion(int width, int height, int variant, Rng* rng,
                                    const DistortedBoxOptions& box) {
  TrainDistortion d;
  d.crop = SampleDistortedBoundingBox(width, height, box, rng);
  d.method = static_cast<ResizeMethod>(variant % 4);
  d.flip = rng->UniformFloat() < 0.5f;
  d.color.ordering = variant % 2;
  d.color.brightness_delta = rng->UniformFloat(-32.0f / 255.0f, 32.0f / 255.0f);
  d.color.saturation_factor = rng->UniformFloat(0.5f, 1.5f);
  d.color.hue_delta = rng->UniformFloat(-0.2f, 0.2f);
  d.color.contrast_factor = rng->UniformFloat(0.5f, 1.5f);
  return d;
}

ImagePreprocessor::ImagePreprocessor(const Options& options)
    : options_(options), decoder_(options.source) {
  if (options_.image_size < 1 || options_.image_size > 8192) {
    throw TrainerError(TrainerError::Kind::kConfig, "--image_size must be in [1, 8192] (got " +
                                                        std::to_string(options_.image_size) + ")");
  }
}

void ImagePreprocessor::Train(const uint8_t* jpeg, size_t size, uint64_t seed, int variant,
                              float* out, const std::string& where) {
  DistortHeaderRead(PlanTrain(jpeg, size, seed, variant, where).distortion, out);
}

void ImagePreprocessor::TrainWith(const uint8_t* jpeg, size_t size, const TrainDistortion& d,
                                  float* out, const std::string& where) {
  decoder_.ReadHeader(jpeg, size, where);
  DistortHeaderRead(d, out);
}

void ImagePreprocessor::DistortHeaderRead(const TrainDistortion& d, float* out) {
  const int s = options_.image_size;
  decoder_.DecodeCrop(d.crop, s, s, options_.dct_scaling, &decoded_);
  Resize(decoded_.pixels.data(), decoded_.width, decoded_.height, decoded_.stride, decoded_.roi, s,
         s, d.method, d.flip, out, &scratch_);
  DistortColorInPlace(out, s * s, d.color);
}

void ImagePreprocessor::Eval(const uint8_t* jpeg, size_t size, float* out,
                             const std::string& where) {
  const PreprocessPlan plan = PlanEval(jpeg, size, where);
  const int s = options_.image_size;
  decoder_.DecodeCrop(plan.distortion.crop, s, s, options_.dct_scaling, &decoded_);
  Resize(decoded_.pixels.data(), decoded_.width, decoded_.height, decoded_.stride, decoded_.roi, s,
         s, ResizeMethod::kBilinear, false, out, &scratch_);
  ScaleInPlace(out, s * s);
}

PreprocessPlan ImagePreprocessor::PlanTrain(const uint8_t* jpeg, size_t size, uint64_t seed,
                                            int variant, const std::string& where) {
  const auto header = decoder_.ReadHeader(jpeg, size, where);
  Rng rng(seed);
  PreprocessPlan plan;
  plan.width = header.width;
  plan.height = header.height;
  plan.distortion = DrawTrainDistortion(header.width, header.height, variant, &rng, options_.box);
  plan.distort_color = true;
  return plan;
}

PreprocessPlan ImagePreprocessor::PlanEval(const uint8_t* jpeg, size_t size,
                                           const std::string& where) {
  const auto header = decoder_.ReadHeader(jpeg, size, where);
  PreprocessPlan plan;
  plan.width = header.width;
  plan.height = header.height;
  plan.distortion.crop =
      CentralCrop(header.width, header.height, options_.eval_central_fraction);
  return plan;
}

}  // namespace retrain::trainer
