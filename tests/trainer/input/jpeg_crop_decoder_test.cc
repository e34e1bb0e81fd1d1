#include "trainer/input/jpeg_crop_decoder.h"

// clang-format off
#include <cstdio>
#include <jpeglib.h>
// clang-format on
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>

#include "tests/trainer/input/test_dataset.h"
#include "trainer/input/resize.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

using ::testing::HasSubstr;

TEST(JpegCropDecoderTest, ChoosesTheLargestReductionThatKeepsTheOutputSize) {
  EXPECT_EQ(ChooseDctScale(500, 375, 299, 299), 8);    // no room to reduce
  EXPECT_EQ(ChooseDctScale(598, 598, 299, 299), 4);    // exactly 1/2
  EXPECT_EQ(ChooseDctScale(597, 900, 299, 299), 8);    // one side too small for 1/2
  EXPECT_EQ(ChooseDctScale(1600, 1200, 299, 299), 2);  // 1/4: 400x300
  EXPECT_EQ(ChooseDctScale(1200, 1195, 299, 299), 4);  // 1/4 would give 298.75 rows
  EXPECT_EQ(ChooseDctScale(4000, 3000, 299, 299), 1);  // 1/8: 500x375
  EXPECT_EQ(ChooseDctScale(32, 32, 299, 299), 8);      // upscaling: full size
}

TEST(JpegCropDecoderTest, FullDecodeMatchesTheEncodedImage) {
  const auto img = testing::MakePhotoImage(120, 90, 1);
  const std::string jpeg = testing::EncodeJpeg(img, 95);
  JpegCropDecoder decoder;
  const auto h = decoder.ReadHeader(testing::Bytes(jpeg), jpeg.size(), "test");
  EXPECT_EQ(h.width, 120);
  EXPECT_EQ(h.height, 90);
  EXPECT_EQ(h.components, 3);
  DecodedImage out;
  decoder.DecodeFull(&out);
  ASSERT_EQ(out.width, 120);
  ASSERT_EQ(out.height, 90);
  double diff = 0;
  for (size_t i = 0; i < img.pixels.size(); ++i) diff += std::abs(img.pixels[i] - out.pixels[i]);
  EXPECT_LT(diff / img.pixels.size(), 3.0);
}

// At full scale the crop decoder gives the full decode's pixels.
TEST(JpegCropDecoderTest, FullScaleCropEqualsFullDecodeCropped) {
  const auto img = testing::MakePhotoImage(500, 375, 2);
  const std::string jpeg = testing::EncodeJpeg(img, 90);
  JpegCropDecoder decoder;
  DecodedImage full, crop;
  decoder.ReadHeader(testing::Bytes(jpeg), jpeg.size(), "test");
  decoder.DecodeFull(&full);
  for (const CropRect rect : {CropRect{37, 51, 301, 250}, CropRect{0, 0, 500, 375},
                              CropRect{200, 300, 300, 75}, CropRect{1, 1, 17, 9}}) {
    decoder.ReadHeader(testing::Bytes(jpeg), jpeg.size(), "test");
    decoder.DecodeCrop(rect, 299, 299, true, &crop);
    ASSERT_EQ(crop.scale_num, 8);
    ASSERT_EQ(crop.roi.width, rect.width);
    ASSERT_EQ(crop.roi.height, rect.height);
    ASSERT_EQ(crop.height, rect.height);  // rows above skipped, rows below never decoded
    ASSERT_LE(crop.width, 500);
    ASSERT_GE(crop.width, rect.width);
    const int rx = static_cast<int>(crop.roi.x), ry = static_cast<int>(crop.roi.y);
    ASSERT_EQ(ry, 0);
    double diff = 0;
    int max_diff = 0;
    for (int y = 0; y < rect.height; ++y) {
      for (int x = 0; x < rect.width * 3; ++x) {
        const int a = full.pixels[(rect.y + y) * full.stride + rect.x * 3 + x];
        const int b = crop.pixels[(ry + y) * crop.stride + rx * 3 + x];
        diff += std::abs(a - b);
        max_diff = std::max(max_diff, std::abs(a - b));
      }
    }
    EXPECT_LT(diff / (rect.width * rect.height * 3.0), 0.05)
        << rect.x << "," << rect.y << " " << rect.width << "x" << rect.height;
    EXPECT_LE(max_diff, 2);
  }
}

double MeanAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += std::fabs(a[i] - b[i]);
  return d / static_cast<double>(a.size());
}

// The DCT-scaled crop, resized to the output, is close to a full decode,
// crop and resize to the same size; and much cheaper. Prints both times.
TEST(JpegCropDecoderTest, DctScaledCropMatchesFullDecodeCropResizeAndIsFaster) {
  const auto img = testing::MakePhotoImage(2000, 1500, 3);
  const std::string jpeg = testing::EncodeJpeg(img, 90);
  const CropRect rect{211, 133, 1600, 1250};
  const int out = 299;
  JpegCropDecoder decoder;
  DecodedImage scaled, full;
  ResizeScratch scratch;

  decoder.ReadHeader(testing::Bytes(jpeg), jpeg.size(), "test");
  decoder.DecodeCrop(rect, out, out, true, &scaled);
  EXPECT_EQ(scaled.scale_num, 2);  // 1/4: 400 x 312.5 >= 299 x 299
  decoder.ReadHeader(testing::Bytes(jpeg), jpeg.size(), "test");
  decoder.DecodeFull(&full);

  // 1) The decoded region against the full decode box-averaged (area) to the
  // same scale.
  const float s = scaled.scale_num / 8.0f;
  const int w = static_cast<int>(scaled.roi.width), h = static_cast<int>(scaled.roi.height);
  std::vector<float> a(static_cast<size_t>(w) * h * 3), b(a.size());
  Resize(scaled.pixels.data(), scaled.width, scaled.height, scaled.stride,
         {scaled.roi.x, scaled.roi.y, static_cast<float>(w), static_cast<float>(h)}, w, h,
         ResizeMethod::kNearest, false, a.data(), &scratch);
  Resize(full.pixels.data(), full.width, full.height, full.stride,
         {static_cast<float>(rect.x), static_cast<float>(rect.y), w / s, h / s}, w, h,
         ResizeMethod::kArea, false, b.data(), &scratch);
  const double region_diff = MeanAbsDiff(a, b);
  std::printf(
      "DCT 1/%d region %dx%d vs full decode + crop + area resize: mean abs diff %.4f "
      "(of 1)\n",
      8 / scaled.scale_num, w, h, region_diff);
  EXPECT_LT(region_diff, 0.02);

  // 2) The 299x299 outputs.
  std::vector<float> fast(3 * out * out), slow(3 * out * out);
  Resize(scaled.pixels.data(), scaled.width, scaled.height, scaled.stride, scaled.roi, out, out,
         ResizeMethod::kArea, false, fast.data(), &scratch);
  Resize(full.pixels.data(), full.width, full.height, full.stride,
         {static_cast<float>(rect.x), static_cast<float>(rect.y), static_cast<float>(rect.width),
          static_cast<float>(rect.height)},
         out, out, ResizeMethod::kArea, false, slow.data(), &scratch);
  const double out_diff = MeanAbsDiff(fast, slow);
  std::printf("299x299 area outputs: mean abs diff %.4f (of 1)\n", out_diff);
  EXPECT_LT(out_diff, 0.02);

  // Timing (printed, not asserted): decode + bilinear resize to 299.
  auto time = [&](bool dct) {
    const int reps = 10;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) {
      decoder.ReadHeader(testing::Bytes(jpeg), jpeg.size(), "test");
      if (dct) {
        decoder.DecodeCrop(rect, out, out, true, &scaled);
        Resize(scaled.pixels.data(), scaled.width, scaled.height, scaled.stride, scaled.roi, out,
               out, ResizeMethod::kBilinear, false, fast.data(), &scratch);
      } else {
        decoder.DecodeFull(&full);
        Resize(full.pixels.data(), full.width, full.height, full.stride,
               {static_cast<float>(rect.x), static_cast<float>(rect.y),
                static_cast<float>(rect.width), static_cast<float>(rect.height)},
               out, out, ResizeMethod::kBilinear, false, slow.data(), &scratch);
      }
    }
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
               .count() /
           reps;
  };
  const double t_dct = time(true), t_full = time(false);
  std::printf(
      "2000x1500 JPEG, crop 1600x1250 -> 299: DCT-scaled crop decode %.2f ms, full "
      "decode + crop %.2f ms (%.1fx)\n",
      t_dct, t_full, t_full / t_dct);
}

TEST(JpegCropDecoderTest, DamagedDataIsADataErrorNamingTheRecord) {
  const std::string jpeg = testing::EncodeJpeg(testing::MakePhotoImage(64, 64, 4), 90);
  JpegCropDecoder decoder;
  DecodedImage out;
  try {
    decoder.ReadHeader(testing::Bytes(jpeg), 3, "shard-x: record at offset 77");
    FAIL();
  } catch (const TrainerError& e) {
    EXPECT_EQ(e.kind(), TrainerError::Kind::kData);
    EXPECT_THAT(e.what(), HasSubstr("shard-x: record at offset 77"));
  }
  const std::string png = "\x89PNG\r\n\x1a\nxxxxxxxxxxxxxxxx";
  EXPECT_THROW(decoder.ReadHeader(testing::Bytes(png), png.size(), "w"), TrainerError);
  // Cut in the middle of the scan: libjpeg would pad it with grey.
  const std::string cut = jpeg.substr(0, jpeg.size() / 2);
  decoder.ReadHeader(testing::Bytes(cut), cut.size(), "cut");
  try {
    decoder.DecodeCrop({0, 0, 64, 64}, 32, 32, true, &out);
    FAIL();
  } catch (const TrainerError& e) {
    EXPECT_THAT(e.what(), HasSubstr("cut: cannot decode"));
  }
  // The decoder is still usable.
  decoder.ReadHeader(testing::Bytes(jpeg), jpeg.size(), "ok");
  decoder.DecodeCrop({8, 8, 40, 40}, 32, 32, true, &out);
  EXPECT_EQ(out.height, 40);
}

// Grayscale never occurs in our shards, but decodes to RGB all the same.
TEST(JpegCropDecoderTest, GrayscaleDecodesToRgb) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = 40;
  cinfo.image_height = 30;
  cinfo.input_components = 1;
  cinfo.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  std::vector<uint8_t> row(40);
  for (int y = 0; y < 30; ++y) {
    for (int x = 0; x < 40; ++x) row[x] = static_cast<uint8_t>(x * 6);
    JSAMPROW p = row.data();
    jpeg_write_scanlines(&cinfo, &p, 1);
  }
  jpeg_finish_compress(&cinfo);
  const std::string jpeg(reinterpret_cast<char*>(buffer), size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);

  JpegCropDecoder decoder;
  DecodedImage out;
  EXPECT_EQ(decoder.ReadHeader(testing::Bytes(jpeg), jpeg.size(), "g").components, 1);
  decoder.DecodeCrop({10, 5, 20, 20}, 16, 16, true, &out);
  const uint8_t* p = out.pixels.data() + 3 * static_cast<int>(out.roi.x);
  EXPECT_EQ(p[0], p[1]);
  EXPECT_EQ(p[1], p[2]);
  EXPECT_NEAR(p[0], 60, 3);
}

}  // namespace
}  // namespace retrain::trainer
