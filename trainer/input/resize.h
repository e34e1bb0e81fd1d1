// Image resizing as tf.image.resize does it, from a region of an 8-bit RGB
// image to float RGB.
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/input/jpeg_crop_decoder.h"

namespace retrain::trainer {

// TensorFlow's ResizeMethod numbering (image_processing.py picks
// `thread_id % 4`).
enum class ResizeMethod { kBilinear = 0, kNearest = 1, kBicubic = 2, kArea = 3 };

const char* ResizeMethodName(ResizeMethod method);

// Reusable working memory of Resize(); one per thread.
struct ResizeScratch {
  std::vector<int> x_first, y_first;
  std::vector<float> x_weights, y_weights;
  std::vector<float> rows;  // horizontally resampled rows
};

// Resamples the region `roi` (fractional, in pixels of `src`) of an 8-bit
// interleaved RGB image to out_width x out_height, writing planar float RGB
// in [0, 1] (value / 255) to `out` (CHW: 3 planes of out_width * out_height).
// `flip` mirrors the output left-right (tf.image.flip_left_right after the
// resize, at no cost).
//
// Sampling follows TensorFlow 2's tf.image.resize (half-pixel centres, no
// antialiasing): bilinear; nearest (floor); bicubic with Keys' a = -0.5
// (taps outside the region dropped and the rest renormalised); area (box
// average with fractional edge weights, as resize_area). Samples outside
// the region are clamped to its edge pixels, as if the region had been cut
// out first (tf.slice, then resize). TensorFlow 1's align_corners=False mode,
// which the reference scripts ran, shifts the image by half a pixel; for
// random training crops that is immaterial, and the TF2 convention is what
// PIL and torchvision also use.
void Resize(const uint8_t* src, int src_width, int src_height, int stride, const RegionF& roi,
            int out_width, int out_height, ResizeMethod method, bool flip, float* out,
            ResizeScratch* scratch);

// Resize() along one axis as a dense matrix, for devices that resample with
// matrix products (the GPU decode path): output pixel o (stored at row
// out_size - 1 - o when `flip`) is the sum over k of
// weights[o * count + k] * source[first + k] (the weights include `gain`),
// where [first, first + count) are the whole source pixels of the region
// [start, start + size) of an axis of src_size pixels, clamped to it as
// Resize() clamps. So per
// plane, Resize(src, roi, ...) equals Y * src[y rows, x columns] * X^T with
// Y built for the rows (gain 1/255) and X for the columns (with `flip`).
struct ResampleMatrix {
  int first = 0;
  int count = 0;
  std::vector<float> weights;  // out_size x count, row-major
};
ResampleMatrix BuildResampleMatrix(ResizeMethod method, float start, float size, int src_size,
                                   int out_size, bool flip, float gain);

}  // namespace retrain::trainer
