#include "trainer/input/preprocess.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "tests/trainer/input/test_dataset.h"

namespace retrain::trainer {
namespace {

TEST(SampleDistortedBoundingBoxTest, CropsFollowTheConstraints) {
  const DistortedBoxOptions options;  // the reference's
  int whole = 0;
  double area_sum = 0;
  const int draws = 5000;
  for (const auto& [w, h] : {std::pair{500, 375}, std::pair{375, 500}, std::pair{1000, 50}}) {
    Rng rng(123);
    for (int i = 0; i < draws; ++i) {
      const CropRect c = SampleDistortedBoundingBox(w, h, options, &rng);
      ASSERT_GE(c.x, 0);
      ASSERT_GE(c.y, 0);
      ASSERT_GE(c.width, 1);
      ASSERT_GE(c.height, 1);
      ASSERT_LE(c.x + c.width, w);
      ASSERT_LE(c.y + c.height, h);
      if (c == CropRect{0, 0, w, h}) {
        ++whole;
        continue;
      }
      const double area = static_cast<double>(c.width) * c.height / (w * h);
      ASSERT_GE(area, 0.1 - 1e-9);  // min_object_covered w.r.t. the whole image
      const double aspect = static_cast<double>(c.width) / c.height;
      ASSERT_GE(aspect, 0.75 - 1.0 / c.height);  // rounding of width = round(h * aspect)
      ASSERT_LE(aspect, 1.33 + 1.0 / c.height);
      if (w == 500) area_sum += area;
    }
  }
  // A 1000x50 strip cannot hold a crop of aspect 0.75..1.33 covering 10 %:
  // those draws fall back to the whole image; the others rarely do.
  EXPECT_GE(whole, draws);
  EXPECT_LT(whole, draws + draws / 10);
  // Mean area of 500x375 crops: uniform heights between the area bounds.
  EXPECT_GT(area_sum / draws, 0.35);
  EXPECT_LT(area_sum / draws, 0.7);
}

TEST(SampleDistortedBoundingBoxTest, SameStreamSameBox) {
  Rng a(5), b(5), c(6);
  for (int i = 0; i < 50; ++i) {
    const CropRect ca = SampleDistortedBoundingBox(640, 480, {}, &a);
    EXPECT_EQ(ca, SampleDistortedBoundingBox(640, 480, {}, &b));
    (void)SampleDistortedBoundingBox(640, 480, {}, &c);
  }
}

TEST(CentralCropTest, TensorFlowRounding) {
  // start = int((size - size * 0.875) / 2), size - 2 * start.
  EXPECT_EQ(CentralCrop(500, 375, 0.875), (CropRect{31, 23, 438, 329}));
  EXPECT_EQ(CentralCrop(299, 299, 0.875), (CropRect{18, 18, 263, 263}));
  EXPECT_EQ(CentralCrop(8, 8, 1.0), (CropRect{0, 0, 8, 8}));
}

// --- colour: against TensorFlow's ops written out one by one ---------------

// adjust_saturation_op.cc's conversions.
void RgbToHsv(float r, float g, float b, float* h, float* s, float* v) {
  const float vv = std::max(r, std::max(g, b));
  const float range = vv - std::min(r, std::min(g, b));
  *s = vv > 0 ? range / vv : 0;
  const float norm = 1.0f / (6.0f * range);
  float hh;
  if (r == vv) {
    hh = norm * (g - b);
  } else if (g == vv) {
    hh = norm * (b - r) + 2.0f / 6.0f;
  } else {
    hh = norm * (r - g) + 4.0f / 6.0f;
  }
  if (range <= 0.0f) hh = 0;
  if (hh < 0.0f) hh += 1;
  *v = vv;
  *h = hh;
}
void HsvToRgb(float h, float s, float v, float* r, float* g, float* b) {
  const float c = s * v, m = v - c, dh = h * 6;
  const int cat = static_cast<int>(dh);
  float fmodu = dh;
  while (fmodu <= 0) fmodu += 2.0f;
  while (fmodu >= 2.0f) fmodu -= 2.0f;
  const float x = c * (1 - std::fabs(fmodu - 1));
  float rr = 0, gg = 0, bb = 0;
  switch (cat) {
    case 0:
      rr = c, gg = x;
      break;
    case 1:
      rr = x, gg = c;
      break;
    case 2:
      gg = c, bb = x;
      break;
    case 3:
      gg = x, bb = c;
      break;
    case 4:
      rr = x, bb = c;
      break;
    case 5:
      rr = c, bb = x;
      break;
    default:
      break;
  }
  *r = rr + m, *g = gg + m, *b = bb + m;
}

void ReferenceDistort(std::vector<float>* img, const ColorDistortion& c) {
  const int n = static_cast<int>(img->size() / 3);
  auto brightness = [&] {
    for (float& x : *img) x += c.brightness_delta;
  };
  auto saturation = [&] {
    for (int i = 0; i < n; ++i) {
      float* p = img->data() + 3 * i;
      float h, s, v;
      RgbToHsv(p[0], p[1], p[2], &h, &s, &v);
      s = std::min(1.0f, std::max(0.0f, s * c.saturation_factor));
      HsvToRgb(h, s, v, &p[0], &p[1], &p[2]);
    }
  };
  auto hue = [&] {
    for (int i = 0; i < n; ++i) {
      float* p = img->data() + 3 * i;
      float h, s, v;
      RgbToHsv(p[0], p[1], p[2], &h, &s, &v);
      h = std::fmod(h + c.hue_delta, 1.0f);
      if (h < 0) h += 1.0f;
      HsvToRgb(h, s, v, &p[0], &p[1], &p[2]);
    }
  };
  auto contrast = [&] {
    double m[3] = {0, 0, 0};
    for (int i = 0; i < n; ++i) {
      for (int ch = 0; ch < 3; ++ch) m[ch] += (*img)[3 * i + ch];
    }
    for (int i = 0; i < n; ++i) {
      for (int ch = 0; ch < 3; ++ch) {
        float& x = (*img)[3 * i + ch];
        const float mean = static_cast<float>(m[ch] / n);
        x = (x - mean) * c.contrast_factor + mean;
      }
    }
  };
  brightness();
  if (c.ordering == 0) {
    saturation();
    hue();
    contrast();
  } else {
    contrast();
    saturation();
    hue();
  }
}

TEST(ColorTest, MatchesTensorFlowsOpsInBothOrders) {
  Rng rng(77);
  const int n = 4000;
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<float> img(3 * n);
    for (int i = 0; i < n; ++i) {
      // Greys, saturated colours and everything between.
      const float base = rng.UniformFloat();
      for (int ch = 0; ch < 3; ++ch) {
        img[3 * i + ch] = (i % 7 == 0) ? base : rng.UniformFloat();
      }
    }
    ColorDistortion c;
    c.brightness_delta = rng.UniformFloat(-32.0f / 255, 32.0f / 255);
    c.saturation_factor = rng.UniformFloat(0.5f, 1.5f);
    c.hue_delta = rng.UniformFloat(-0.2f, 0.2f);
    c.contrast_factor = rng.UniformFloat(0.5f, 1.5f);
    c.ordering = trial % 2;

    std::vector<float> expected = img;
    ReferenceDistort(&expected, c);
    std::vector<float> chw(3 * n);
    for (int i = 0; i < n; ++i) {
      for (int ch = 0; ch < 3; ++ch) chw[ch * n + i] = img[3 * i + ch];
    }
    DistortColorInPlace(chw.data(), n, c);
    double max_err = 0;
    for (int i = 0; i < n; ++i) {
      for (int ch = 0; ch < 3; ++ch) {
        const float want = (std::clamp(expected[3 * i + ch], 0.0f, 1.0f) - 0.5f) * 2.0f;
        max_err = std::max(max_err, static_cast<double>(std::fabs(chw[ch * n + i] - want)));
      }
    }
    EXPECT_LT(max_err, 1e-4) << "trial " << trial << " ordering " << c.ordering;
  }
}

// --- resize -------------------------------------------------------------------

TEST(ResizeTest, SameSizeIsIdentityAndFlipMirrors) {
  const auto img = testing::MakePhotoImage(20, 10, 9);
  ResizeScratch scratch;
  for (auto method : {ResizeMethod::kBilinear, ResizeMethod::kNearest, ResizeMethod::kBicubic,
                      ResizeMethod::kArea}) {
    std::vector<float> out(20 * 10 * 3), flipped(out.size());
    Resize(img.pixels.data(), 20, 10, 60, {0, 0, 20, 10}, 20, 10, method, false, out.data(),
           &scratch);
    Resize(img.pixels.data(), 20, 10, 60, {0, 0, 20, 10}, 20, 10, method, true, flipped.data(),
           &scratch);
    for (int y = 0; y < 10; ++y) {
      for (int x = 0; x < 20; ++x) {
        for (int c = 0; c < 3; ++c) {
          const float want = img.pixels[(y * 20 + x) * 3 + c] / 255.0f;
          ASSERT_NEAR(out[(c * 10 + y) * 20 + x], want, 1e-5) << ResizeMethodName(method);
          ASSERT_NEAR(flipped[(c * 10 + y) * 20 + 19 - x], want, 1e-5);
        }
      }
    }
  }
}

TEST(ResizeTest, AreaHalvingAveragesBlocksAndRegionsOffset) {
  const auto img = testing::MakePhotoImage(16, 12, 10);
  ResizeScratch scratch;
  std::vector<float> out(4 * 3 * 3);
  // The region 8x6 at (4, 2), halved.
  Resize(img.pixels.data(), 16, 12, 48, {4, 2, 8, 6}, 4, 3, ResizeMethod::kArea, false, out.data(),
         &scratch);
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 4; ++x) {
      for (int c = 0; c < 3; ++c) {
        float sum = 0;
        for (int dy = 0; dy < 2; ++dy) {
          for (int dx = 0; dx < 2; ++dx) {
            sum += img.pixels[((2 + 2 * y + dy) * 16 + 4 + 2 * x + dx) * 3 + c];
          }
        }
        EXPECT_NEAR(out[(c * 3 + y) * 4 + x], sum / 4 / 255.0f, 1e-5);
      }
    }
  }
  // Bilinear halving with half-pixel centres also averages 2x2 blocks.
  Resize(img.pixels.data(), 16, 12, 48, {4, 2, 8, 6}, 4, 3, ResizeMethod::kBilinear, false,
         out.data(), &scratch);
  float sum = 0;
  for (int dy = 0; dy < 2; ++dy) {
    for (int dx = 0; dx < 2; ++dx) sum += img.pixels[((2 + dy) * 16 + 4 + dx) * 3];
  }
  EXPECT_NEAR(out[0], sum / 4 / 255.0f, 1e-5);
}

// --- whole preprocessing ----------------------------------------------------------

TEST(ImagePreprocessorTest, TrainingOutputShapeRangeAndDeterminism) {
  const std::string jpeg = testing::EncodeJpeg(testing::MakePhotoImage(500, 375, 11), 90);
  ImagePreprocessor::Options o;
  o.image_size = 299;
  ImagePreprocessor pre(o);
  const size_t n = 3 * 299 * 299;
  std::vector<float> a(n), b(n), c(n);
  for (int variant = 0; variant < 4; ++variant) {
    pre.Train(testing::Bytes(jpeg), jpeg.size(), 1000 + variant, variant, a.data(), "t");
    for (float v : a) ASSERT_TRUE(v >= -1.0f && v <= 1.0f) << v;
    pre.Train(testing::Bytes(jpeg), jpeg.size(), 1000 + variant, variant, b.data(), "t");
    EXPECT_EQ(a, b);
    pre.Train(testing::Bytes(jpeg), jpeg.size(), 2000 + variant, variant, c.data(), "t");
    EXPECT_NE(a, c);
    // Not a constant image.
    const auto [lo, hi] = std::minmax_element(a.begin(), a.end());
    EXPECT_LT(*lo + 0.2f, *hi);
  }
  // The draws follow the variant: method variant % 4, colour order variant % 2.
  Rng rng(1);
  const TrainDistortion d = DrawTrainDistortion(500, 375, 3, &rng);
  EXPECT_EQ(d.method, ResizeMethod::kArea);
  EXPECT_EQ(d.color.ordering, 1);
  EXPECT_GE(d.color.brightness_delta, -32.0f / 255);
  EXPECT_LT(d.color.brightness_delta, 32.0f / 255);
  EXPECT_GE(d.color.saturation_factor, 0.5f);
  EXPECT_LT(d.color.saturation_factor, 1.5f);
  EXPECT_GE(d.color.hue_delta, -0.2f);
  EXPECT_LT(d.color.hue_delta, 0.2f);
  EXPECT_GE(d.color.contrast_factor, 0.5f);
  EXPECT_LT(d.color.contrast_factor, 1.5f);
}

TEST(ImagePreprocessorTest, EvalIsTheCentralCropBilinearAndDeterministic) {
  const auto img = testing::MakePhotoImage(500, 375, 12);
  const std::string jpeg = testing::EncodeJpeg(img, 95);
  ImagePreprocessor::Options o;
  o.image_size = 64;
  ImagePreprocessor pre(o);
  const size_t n = 3 * 64 * 64;
  std::vector<float> a(n), b(n);
  pre.Eval(testing::Bytes(jpeg), jpeg.size(), a.data(), "e");
  pre.Eval(testing::Bytes(jpeg), jpeg.size(), b.data(), "e");
  EXPECT_EQ(a, b);
  for (float v : a) ASSERT_TRUE(v >= -1.0f && v <= 1.0f);

  // The same from the original pixels: central crop, bilinear, [-1, 1].
  const CropRect crop = CentralCrop(500, 375, 0.875);
  std::vector<float> chw(n);
  ResizeScratch scratch;
  Resize(img.pixels.data(), 500, 375, 1500,
         {static_cast<float>(crop.x), static_cast<float>(crop.y), static_cast<float>(crop.width),
          static_cast<float>(crop.height)},
         64, 64, ResizeMethod::kBilinear, false, chw.data(), &scratch);
  double diff = 0;
  for (size_t i = 0; i < n; ++i) diff += std::fabs(a[i] - (chw[i] - 0.5f) * 2);
  // JPEG loss and the DCT-scaled decode (438x329 -> 1/4 scale) only.
  EXPECT_LT(diff / n, 0.03);
  EXPECT_EQ(pre.last_decoded().scale_num, 2);
}

TEST(ImagePreprocessorTest, TrainWithFixedDistortionFlipMirrors) {
  const std::string jpeg = testing::EncodeJpeg(testing::MakePhotoImage(300, 200, 13), 90);
  ImagePreprocessor::Options o;
  o.image_size = 50;
  ImagePreprocessor pre(o);
  TrainDistortion d;
  d.crop = {20, 10, 200, 150};
  d.method = ResizeMethod::kBicubic;
  std::vector<float> a(3 * 50 * 50), b(a.size());
  pre.TrainWith(testing::Bytes(jpeg), jpeg.size(), d, a.data(), "t");
  d.flip = true;
  pre.TrainWith(testing::Bytes(jpeg), jpeg.size(), d, b.data(), "t");
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < 50; ++y) {
      for (int x = 0; x < 50; ++x) {
        ASSERT_FLOAT_EQ(a[(c * 50 + y) * 50 + x], b[(c * 50 + y) * 50 + 49 - x]);
      }
    }
  }
}

}  // namespace
}  // namespace retrain::trainer
