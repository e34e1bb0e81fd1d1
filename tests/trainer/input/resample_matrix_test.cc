// BuildResampleMatrix() is Resize() as matrix products: the GPU decode path
// resamples with it, so it must give what the CPU path gives.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/trainer/input/test_dataset.h"
#include "trainer/input/resize.h"

namespace retrain::trainer {
namespace {

// Y * plane * X^T for each of the 3 planes of an interleaved image.
std::vector<float> ApplyMatrices(const testing::RgbImage& img, const ResampleMatrix& y,
                                 const ResampleMatrix& x, int out_w, int out_h) {
  std::vector<float> out(3 * static_cast<size_t>(out_w) * out_h, 0.0f);
  for (int c = 0; c < 3; ++c) {
    for (int oy = 0; oy < out_h; ++oy) {
      for (int ox = 0; ox < out_w; ++ox) {
        double acc = 0;
        for (int j = 0; j < y.count; ++j) {
          const float wy = y.weights[static_cast<size_t>(oy) * y.count + j];
          if (wy == 0.0f) continue;
          for (int i = 0; i < x.count; ++i) {
            const float wx = x.weights[static_cast<size_t>(ox) * x.count + i];
            const size_t p = (static_cast<size_t>(y.first + j) * img.width + x.first + i) * 3 + c;
            acc += static_cast<double>(wy) * wx * img.pixels[p];
          }
        }
        out[(static_cast<size_t>(c) * out_h + oy) * out_w + ox] = static_cast<float>(acc);
      }
    }
  }
  return out;
}

TEST(ResampleMatrixTest, MatrixProductsEqualResizeForEveryMethodCropAndFlip) {
  const testing::RgbImage img = testing::MakePhotoImage(61, 47, 5);
  struct Case {
    CropRect crop;
    int out_w, out_h;
  };
  // Shrinking, enlarging, a crop at the edge, a one-pixel-wide crop.
  const Case cases[] = {{{3, 5, 40, 30}, 17, 13},
                        {{10, 7, 9, 6}, 23, 19},
                        {{0, 0, 61, 47}, 29, 29},
                        {{50, 30, 11, 17}, 8, 8},
                        {{20, 10, 1, 20}, 5, 7}};
  for (const Case& k : cases) {
    for (int m = 0; m < 4; ++m) {
      for (bool flip : {false, true}) {
        const auto method = static_cast<ResizeMethod>(m);
        SCOPED_TRACE(std::string(ResizeMethodName(method)) + (flip ? " flipped" : "") + " crop x " +
                     std::to_string(k.crop.x) + " w " + std::to_string(k.crop.width));
        std::vector<float> expected(3 * static_cast<size_t>(k.out_w) * k.out_h);
        ResizeScratch scratch;
        const RegionF roi{static_cast<float>(k.crop.x), static_cast<float>(k.crop.y),
                          static_cast<float>(k.crop.width), static_cast<float>(k.crop.height)};
        Resize(img.pixels.data(), img.width, img.height, img.width * 3, roi, k.out_w, k.out_h,
               method, flip, expected.data(), &scratch);
        const ResampleMatrix y = BuildResampleMatrix(method, roi.y, roi.height, img.height, k.out_h,
                                                     false, 1.0f / 255.0f);
        const ResampleMatrix x =
            BuildResampleMatrix(method, roi.x, roi.width, img.width, k.out_w, flip, 1.0f);
        // Only the crop's own pixels are read.
        EXPECT_GE(x.first, 0);
        EXPECT_LE(x.first + x.count, img.width);
        EXPECT_GE(x.first, k.crop.x);
        EXPECT_LE(x.first + x.count, k.crop.x + k.crop.width);
        const std::vector<float> got = ApplyMatrices(img, y, x, k.out_w, k.out_h);
        double worst = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          worst = std::max(worst, static_cast<double>(std::fabs(got[i] - expected[i])));
        }
        EXPECT_LT(worst, 1e-5);
      }
    }
  }
}

TEST(ResampleMatrixTest, RowsSumToTheGain) {
  for (int m = 0; m < 4; ++m) {
    const ResampleMatrix r =
        BuildResampleMatrix(static_cast<ResizeMethod>(m), 2.5f, 30.0f, 40, 11, true, 0.5f);
    for (int o = 0; o < 11; ++o) {
      double sum = 0;
      for (int k = 0; k < r.count; ++k) sum += r.weights[static_cast<size_t>(o) * r.count + k];
      EXPECT_NEAR(sum, 0.5, 1e-5) << ResizeMethodName(static_cast<ResizeMethod>(m)) << " row " << o;
    }
  }
}

}  // namespace
}  // namespace retrain::trainer
