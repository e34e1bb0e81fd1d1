// Colour distortion (image_processing.py distort_color) and the final
// [-1, 1] scaling, in place on planar float RGB images.
#pragma once

#include <cstdint>

namespace retrain::trainer {

// The random factors of distort_color for one image, and which of its two
// orders applies (thread_id % 2 in the reference):
//   0: brightness, saturation, hue, contrast
//   1: brightness, contrast, saturation, hue
// followed in both by a clip to [0, 1].
struct ColorDistortion {
  float brightness_delta = 0.0f;   // added; random_brightness(32/255): [-32/255, 32/255)
  float saturation_factor = 1.0f;  // random_saturation(0.5, 1.5)
  float hue_delta = 0.0f;          // random_hue(0.2), in turns: [-0.2, 0.2)
  float contrast_factor = 1.0f;    // random_contrast(0.5, 1.5)
  int ordering = 0;
};

// Applies `c` to the planar image `chw` (3 planes of num_pixels, values
// nominally in [0, 1]), clips to [0, 1] and scales to [-1, 1] as
// (x - 0.5) * 2, in place. The operations are TensorFlow's: adjust_brightness
// adds; adjust_saturation and adjust_hue go to HSV (saturation scaled and
// clamped to [0, 1], hue shifted and wrapped) and back, with the results of
// TensorFlow's kernels (the two conversions fuse into one, since saturation
// is followed by hue in both orders); adjust_contrast moves each channel
// towards or away from its mean over the image. No clipping happens between
// steps, as in TensorFlow.
void DistortColorInPlace(float* chw, int num_pixels, const ColorDistortion& c);

// Evaluation: clips planar RGB to [0, 1] and scales it to [-1, 1], in place.
void ScaleInPlace(float* chw, int num_pixels);

}  // namespace retrain::trainer
