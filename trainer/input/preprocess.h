// Per-image preprocessing of REFERENCE.md section 2 (image_processing.py):
// training distortions and the evaluation crop, from JPEG bytes to a CHW
// float image in [-1, 1].
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trainer/input/color.h"
#include "trainer/input/jpeg_crop_decoder.h"
#include "trainer/input/random.h"
#include "trainer/input/resize.h"

namespace retrain::trainer {

// tf.image.sample_distorted_bounding_box's arguments in distort_image().
struct DistortedBoxOptions {
  float min_object_covered = 0.1f;
  float min_aspect_ratio = 0.75f;
  float max_aspect_ratio = 1.33f;
  float min_area = 0.05f;
  float max_area = 1.0f;
  int max_attempts = 100;
};

// tf.image.sample_distorted_bounding_box for an image with no boxes of its
// own (use_image_if_no_bounding_boxes: the whole image is the one box):
// up to max_attempts times, draw an aspect ratio, a height (so that the area
// is within [min_area, max_area] of the image) and a position, with
// TensorFlow's rounding; accept the first crop that covers at least
// min_object_covered of the image; else the whole image. With the whole
// image as the box, min_object_covered 0.1 makes the effective minimum area
// 0.1 rather than 0.05, as in TensorFlow.
CropRect SampleDistortedBoundingBox(int width, int height, const DistortedBoxOptions& options,
                                    Rng* rng);

// tf.image.central_crop(image, fraction): the centred box keeping `fraction`
// of each side, with TensorFlow's integer start = int((size - size * f) / 2).
CropRect CentralCrop(int width, int height, double fraction);

// All random choices of the training distortion for one image, drawn in
// TensorFlow's order: box, flip, brightness, saturation, hue, contrast.
// `variant` plays the reference's thread_id: the resize method is
// variant % 4 and the colour order variant % 2.
struct TrainDistortion {
  CropRect crop;
  ResizeMethod method = ResizeMethod::kBilinear;
  bool flip = false;
  ColorDistortion color;
};
TrainDistortion DrawTrainDistortion(int width, int height, int variant, Rng* rng,
                                    const DistortedBoxOptions& box = {});

// What ImagePreprocessor does to one image, drawn but not done, for a
// decoder elsewhere (the GPU path, device_input/device_preprocess.h):
// decode the whole image, resample `distortion.crop` to image_size x
// image_size with `distortion.method` (mirrored if `distortion.flip`), then
// either distort the colours (DistortColorInPlace) or only clip and scale
// (ScaleInPlace).
struct PreprocessPlan {
  int width = 0;  // the image's size, from its header
  int height = 0;
  TrainDistortion distortion;  // evaluation: the central crop, bilinear, no flip
  bool distort_color = false;
};

// Turns encoded JPEG images into model input. Reuses its buffers; one per
// thread, not thread-safe.
class ImagePreprocessor {
 public:
  struct Options {
    int image_size = 299;     // output is image_size x image_size
    bool dct_scaling = true;  // decode at a reduced DCT scale when the crop allows
    float eval_central_fraction = 0.875f;
    DistortedBoxOptions box;
    ImageSource source = ImageSource::kDatasetRecord;  // for the advice in errors
  };

  explicit ImagePreprocessor(const Options& options);

  // Training: decode only the sampled box (DCT-scaled), resize with the
  // variant's method, maybe flip, distort colours, clip, scale to [-1, 1].
  // Writes 3 * image_size^2 floats, planar CHW, to `out`. `seed` is the
  // image's own stream (the pipeline derives it from the run's seed and the
  // record's sequence number). Throws TrainerError(kData) prefixed by
  // `where` when the image cannot be decoded.
  void Train(const uint8_t* jpeg, size_t size, uint64_t seed, int variant, float* out,
             const std::string& where);
  // Like Train with the distortion given (for tests and benchmarks).
  void TrainWith(const uint8_t* jpeg, size_t size, const TrainDistortion& d, float* out,
                 const std::string& where);
  // Evaluation: central crop of eval_central_fraction, bilinear resize,
  // scale to [-1, 1]; deterministic.
  void Eval(const uint8_t* jpeg, size_t size, float* out, const std::string& where);

  // What Train() and Eval() would do, with the same draws, reading only the
  // JPEG's header (its errors as in Train()).
  PreprocessPlan PlanTrain(const uint8_t* jpeg, size_t size, uint64_t seed, int variant,
                           const std::string& where);
  PreprocessPlan PlanEval(const uint8_t* jpeg, size_t size, const std::string& where);

  const Options& options() const { return options_; }
  // The decoded region of the last image (for tests and statistics).
  const DecodedImage& last_decoded() const { return decoded_; }

 private:
  // Decode, resize and colour steps once decoder_ has read the header.
  void DistortHeaderRead(const TrainDistortion& d, float* out);

  const Options options_;
  JpegCropDecoder decoder_;
  DecodedImage decoded_;
  ResizeScratch scratch_;
};

}  // namespace retrain::trainer
