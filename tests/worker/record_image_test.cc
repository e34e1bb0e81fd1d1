#include "worker/image/record_image.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/test_images.h"
#include "worker/image/image_library.h"
#include "worker/image/image_probe.h"

namespace retrain::image {
namespace {

namespace ti = retrain::test_images;

constexpr int kQuality = 90;

class RecordImageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(InitImageLibrary("image_test").ok()); }

  static MakeOutcome Make(std::string bytes, int quality = kQuality) {
    return MakeRecordImage(std::move(bytes), ProbeOptions(), quality);
  }
};

// Mean of each channel of decoded RGB pixels, over columns [x0, x1).
std::vector<double> ChannelMeans(const std::string& rgb, int width, int height, int x0, int x1) {
  std::vector<double> sums(3, 0.0);
  for (int y = 0; y < height; ++y) {
    for (int x = x0; x < x1; ++x) {
      for (int c = 0; c < 3; ++c) {
        sums[c] += static_cast<unsigned char>(rgb[(static_cast<size_t>(y) * width + x) * 3 + c]);
      }
    }
  }
  for (double& s : sums) s /= static_cast<double>(height) * (x1 - x0);
  return sums;
}

TEST_F(RecordImageTest, PassthroughIsTheInputItself) {
  std::string jpeg = ti::MakeJpeg(500, 375);
  const std::string copy = jpeg;
  const char* const data = jpeg.data();
  const MakeOutcome outcome = Make(std::move(jpeg));
  ASSERT_TRUE(outcome.ok) << outcome.detail;
  EXPECT_FALSE(outcome.image.converted);
  EXPECT_EQ(outcome.image.jpeg, copy);
  EXPECT_EQ(outcome.image.jpeg.data(), data);  // moved, not copied
  EXPECT_EQ(outcome.image.width, 500);
  EXPECT_EQ(outcome.image.height, 375);
}

TEST_F(RecordImageTest, ConvertedImagesAreBaselineYcbcr) {
  const struct {
    const char* name;
    std::string bytes;
    int width;
    int height;
  } cases[] = {
      {"gray jpeg", ti::MakeGrayJpeg(64, 48), 64, 48},
      {"cmyk jpeg", ti::MakeCmykJpeg(64, 48), 64, 48},
      {"rgb jpeg", ti::MakeRgbJpeg(64, 48), 64, 48},
      {"progressive", ti::MakeProgressiveJpeg(64, 48), 64, 48},
      {"arithmetic", ti::MakeArithmeticJpeg(64, 48), 64, 48},
      {"exif 6", ti::MakeExifJpeg(64, 48, 6), 48, 64},
      {"exif 5", ti::MakeExifJpeg(64, 48, 5), 48, 64},
      {"exif 2", ti::MakeExifJpeg(64, 48, 2), 64, 48},
      {"png", ti::MakePng(64, 48), 64, 48},
      {"png rgba", ti::MakePngRgba(64, 48), 64, 48},
      {"png 16", ti::MakePng16(64, 48), 64, 48},
      {"png gray", ti::MakeGrayPng(64, 48), 64, 48},
      {"gif", ti::MakeGif(64, 48), 64, 48},
      {"webp", ti::MakeWebp(64, 48), 64, 48},
      {"bmp", ti::MakeBmp(64, 48), 64, 48},
      {"tiff", ti::MakeTiff(64, 48), 64, 48},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const MakeOutcome outcome = Make(c.bytes);
    ASSERT_TRUE(outcome.ok) << outcome.detail;
    EXPECT_TRUE(outcome.image.converted);
    EXPECT_EQ(outcome.image.width, c.width);
    EXPECT_EQ(outcome.image.height, c.height);

    const ti::JpegInfo info = ti::ReadJpegInfo(outcome.image.jpeg);
    ASSERT_TRUE(info.ok);
    EXPECT_EQ(info.components, 3);
    EXPECT_TRUE(info.ycbcr);
    EXPECT_FALSE(info.progressive);
    EXPECT_FALSE(info.arithmetic);
    EXPECT_EQ(info.precision, 8);
    EXPECT_EQ(info.width, c.width);
    EXPECT_EQ(info.height, c.height);

    // What is stored is itself stored as is if it comes round again.
    const ProbeOutcome probe = ProbeImage(outcome.image.jpeg, ProbeOptions());
    ASSERT_TRUE(probe.ok) << probe.detail;
    EXPECT_TRUE(probe.info.passthrough) << probe.info.conversion;
    EXPECT_EQ(probe.info.width, c.width);
    EXPECT_EQ(probe.info.height, c.height);
  }
}

TEST_F(RecordImageTest, NewerFormatsAreConverted) {
  const struct {
    const char* name;
    std::string bytes;
    const char* conversion;
  } cases[] = {
      {"heic", ti::MakeHeic(64, 48), "heif"},
      {"avif", ti::MakeAvif(64, 48), "heif"},
      {"jpeg xl", ti::MakeJpegXl(64, 48), "jpeg-xl"},
      {"jpeg 2000", ti::MakeJpeg2000(64, 48), "jpeg2000"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    if (c.bytes.empty()) continue;  // this libvips cannot write it
    const ProbeOutcome probe = ProbeImage(c.bytes, ProbeOptions());
    if (!probe.ok && probe.reason == v1::SKIP_REASON_UNSUPPORTED) continue;  // nor read it
    ASSERT_TRUE(probe.ok) << probe.detail;
    EXPECT_EQ(probe.info.conversion, c.conversion);
    EXPECT_EQ(probe.info.width, 64);
    EXPECT_EQ(probe.info.height, 48);
    const MakeOutcome outcome = Make(c.bytes);
    ASSERT_TRUE(outcome.ok) << outcome.detail;
    EXPECT_TRUE(outcome.image.converted);
    const ti::JpegInfo info = ti::ReadJpegInfo(outcome.image.jpeg);
    EXPECT_EQ(info.components, 3);
    EXPECT_TRUE(info.ycbcr);
    EXPECT_EQ(info.width, 64);
    EXPECT_EQ(info.height, 48);
  }
}

TEST_F(RecordImageTest, OutputIsDeterministic) {
  for (const std::string& input :
       {ti::MakePng(120, 90), ti::MakeCmykJpeg(120, 90), ti::MakeExifJpeg(120, 90, 6),
        ti::MakeGif(120, 90), ti::MakePngRgba(120, 90)}) {
    const MakeOutcome first = Make(input);
    const MakeOutcome second = Make(input);
    ASSERT_TRUE(first.ok) << first.detail;
    ASSERT_TRUE(second.ok) << second.detail;
    EXPECT_EQ(first.image.jpeg, second.image.jpeg);
  }
}

TEST_F(RecordImageTest, QualityIsUsed) {
  const std::string png = ti::MakePng(200, 150);
  const MakeOutcome low = Make(png, 30);
  const MakeOutcome high = Make(png, 95);
  ASSERT_TRUE(low.ok && high.ok);
  EXPECT_LT(low.image.jpeg.size(), high.image.jpeg.size());
  // Out-of-range qualities are clamped, not refused.
  EXPECT_TRUE(Make(png, 0).ok);
  EXPECT_TRUE(Make(png, 1000).ok);
}

// CMYK JPEGs are converted with the plain formula when they carry no ICC
// profile and through the profile when they do; both must look right.
class CmykTest : public RecordImageTest, public ::testing::WithParamInterface<bool> {
 protected:
  static std::vector<double> MeanRgb(uint8_t c, uint8_t m, uint8_t y, uint8_t k) {
    const MakeOutcome outcome =
        Make(ti::MakeUniformCmykJpeg(64, 48, c, m, y, k, kQuality, /*embed_profile=*/GetParam()));
    EXPECT_TRUE(outcome.ok) << outcome.detail;
    int w = 0;
    int h = 0;
    const std::string rgb = ti::DecodeJpegToRgb(outcome.image.jpeg, &w, &h);
    EXPECT_FALSE(rgb.empty());
    if (rgb.empty()) return {0, 0, 0};
    return ChannelMeans(rgb, w, h, 0, w);
  }
};

TEST_P(CmykTest, NoInkIsWhite) {
  for (double mean : MeanRgb(0, 0, 0, 0)) EXPECT_GT(mean, 240.0);
}

TEST_P(CmykTest, CyanInkIsCyan) {
  const std::vector<double> mean = MeanRgb(255, 0, 0, 0);
  EXPECT_LT(mean[0], 100.0);
  EXPECT_GT(mean[1], 120.0);
  EXPECT_GT(mean[2], 180.0);
}

TEST_P(CmykTest, BlackInkIsDark) {
  for (double mean : MeanRgb(0, 0, 0, 255)) EXPECT_LT(mean, 70.0);
}

INSTANTIATE_TEST_SUITE_P(WithAndWithoutProfile, CmykTest, ::testing::Bool());

TEST_F(RecordImageTest, AlphaIsFlattenedOntoWhite) {
  // Alpha falls from opaque on the left to transparent on the right.
  const MakeOutcome outcome = Make(ti::MakePngRgba(64, 48));
  ASSERT_TRUE(outcome.ok) << outcome.detail;
  int w = 0;
  int h = 0;
  const std::string rgb = ti::DecodeJpegToRgb(outcome.image.jpeg, &w, &h);
  ASSERT_FALSE(rgb.empty());
  for (double mean : ChannelMeans(rgb, w, h, w - 2, w)) EXPECT_GT(mean, 235.0);
}

TEST_F(RecordImageTest, ExifOrientation6IsRotatedClockwise) {
  const int w = 64;
  const int h = 48;
  const std::string upright = ti::MakeJpeg(w, h);
  int ow = 0;
  int oh = 0;
  const std::string original = ti::DecodeJpegToRgb(upright, &ow, &oh);
  ASSERT_EQ(ow, w);

  const MakeOutcome outcome = Make(ti::MakeExifJpeg(w, h, 6));
  ASSERT_TRUE(outcome.ok) << outcome.detail;
  int rw = 0;
  int rh = 0;
  const std::string rotated = ti::DecodeJpegToRgb(outcome.image.jpeg, &rw, &rh);
  ASSERT_EQ(rw, h);
  ASSERT_EQ(rh, w);
  // Orientation 6: the stored image must be turned 90 degrees clockwise,
  // so rotated(row r, column c) = original(row h-1-c, column r).
  double error = 0;
  for (int r = 0; r < rh; ++r) {
    for (int c = 0; c < rw; ++c) {
      for (int k = 0; k < 3; ++k) {
        const int a =
            static_cast<unsigned char>(rotated[(static_cast<size_t>(r) * rw + c) * 3 + k]);
        const int b =
            static_cast<unsigned char>(original[(static_cast<size_t>(h - 1 - c) * w + r) * 3 + k]);
        error += std::abs(a - b);
      }
    }
  }
  EXPECT_LT(error / (static_cast<double>(w) * h * 3), 12.0);
}

TEST_F(RecordImageTest, FailuresUseProbeReasons) {
  EXPECT_EQ(Make("").reason, v1::SKIP_REASON_EMPTY);
  EXPECT_EQ(Make("plain text, not a picture").reason, v1::SKIP_REASON_NOT_AN_IMAGE);
  EXPECT_EQ(Make(ti::Truncate(ti::MakeJpeg(200, 150), 0.5)).reason, v1::SKIP_REASON_TRUNCATED);
  EXPECT_EQ(Make(ti::Truncate(ti::MakeCmykJpeg(200, 150), 0.5)).reason, v1::SKIP_REASON_TRUNCATED);
  EXPECT_EQ(Make(ti::Truncate(ti::MakePng(200, 150), 0.5)).reason, v1::SKIP_REASON_TRUNCATED);
  EXPECT_EQ(Make(ti::Truncate(ti::MakeGif(200, 150), 0.5)).reason, v1::SKIP_REASON_TRUNCATED);
  EXPECT_EQ(Make(ti::MakeHugePngHeader(100000, 100000)).reason, v1::SKIP_REASON_TOO_MANY_PIXELS);

  std::string corrupt = ti::MakeProgressiveJpeg(200, 150);
  const size_t scan = ti::JpegScanDataOffset(corrupt);
  ASSERT_GT(scan, 0u);
  for (size_t i = scan + 50; i < scan + 250; ++i) corrupt[i] = '\xFE';
  const MakeOutcome outcome = Make(corrupt);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.reason, v1::SKIP_REASON_CORRUPT) << outcome.detail;

  // Damage that libjpeg reports only once the scan is over, which libvips'
  // JPEG loader never looks at, even with fail_on=warning: the libjpeg
  // check run before the conversion must catch it.
  std::string rotated = ti::MakeExifJpeg(200, 150, 6);
  for (size_t i = rotated.size() / 2; i < rotated.size() / 2 + 64; ++i) rotated[i] ^= 0x5A;
  const MakeOutcome rotated_outcome = Make(rotated);
  EXPECT_FALSE(rotated_outcome.ok);
  EXPECT_EQ(rotated_outcome.reason, v1::SKIP_REASON_CORRUPT) << rotated_outcome.detail;
}

}  // namespace
}  // namespace retrain::image
