#include "worker/image/image_format.h"

#include <gtest/gtest.h>

#include <string>

#include "common/files.h"
#include "tests/support/test_images.h"

namespace retrain::image {
namespace {

using namespace std::string_literals;
namespace ti = retrain::test_images;

TEST(DetectImageFormatTest, GeneratedFiles) {
  EXPECT_EQ(DetectImageFormat(ti::MakeJpeg(16, 16)), ImageFormat::kJpeg);
  EXPECT_EQ(DetectImageFormat(ti::MakeProgressiveJpeg(16, 16)), ImageFormat::kJpeg);
  EXPECT_EQ(DetectImageFormat(ti::MakeCmykJpeg(16, 16)), ImageFormat::kJpeg);
  EXPECT_EQ(DetectImageFormat(ti::MakePng(16, 16)), ImageFormat::kPng);
  EXPECT_EQ(DetectImageFormat(ti::MakeGif(16, 16)), ImageFormat::kGif);
  EXPECT_EQ(DetectImageFormat(ti::MakeWebp(16, 16)), ImageFormat::kWebp);
  EXPECT_EQ(DetectImageFormat(ti::MakeBmp(16, 16)), ImageFormat::kBmp);
  EXPECT_EQ(DetectImageFormat(ti::MakeTiff(16, 16)), ImageFormat::kTiff);
}

TEST(DetectImageFormatTest, GeneratedNewerFormats) {
  const struct {
    std::string bytes;
    ImageFormat format;
  } cases[] = {
      {ti::MakeHeic(16, 16), ImageFormat::kHeif},
      {ti::MakeAvif(16, 16), ImageFormat::kHeif},
      {ti::MakeJpegXl(16, 16), ImageFormat::kJpegXl},
      {ti::MakeJpeg2000(16, 16), ImageFormat::kJpeg2000},
  };
  for (const auto& c : cases) {
    if (c.bytes.empty()) continue;  // this libvips cannot write it
    EXPECT_EQ(DetectImageFormat(c.bytes), c.format) << ImageFormatName(c.format);
  }
}

TEST(DetectImageFormatTest, MagicNumbers) {
  EXPECT_EQ(DetectImageFormat("\xFF\xD8\xFF\xE0"s), ImageFormat::kJpeg);
  EXPECT_EQ(DetectImageFormat("\x89PNG\r\n\x1A\n"s), ImageFormat::kPng);
  EXPECT_EQ(DetectImageFormat("GIF87a"s), ImageFormat::kGif);
  EXPECT_EQ(DetectImageFormat("GIF89a"s), ImageFormat::kGif);
  EXPECT_EQ(DetectImageFormat("RIFF\x10\0\0\0WEBPVP8 "s), ImageFormat::kWebp);
  EXPECT_EQ(DetectImageFormat("BM\0\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0"s), ImageFormat::kBmp);
  EXPECT_EQ(DetectImageFormat("II*\0\x08\0\0\0"s), ImageFormat::kTiff);
  EXPECT_EQ(DetectImageFormat("MM\0*\0\0\0\x08"s), ImageFormat::kTiff);
  EXPECT_EQ(DetectImageFormat("II+\0\x08\0\0\0"s), ImageFormat::kTiff);  // BigTIFF
  EXPECT_EQ(DetectImageFormat("\0\0\0\x18"
                              "ftypheic\0\0\0\0mif1heic"s),
            ImageFormat::kHeif);
  EXPECT_EQ(DetectImageFormat("\0\0\0\x1C"
                              "ftypavif\0\0\0\0avifmif1miaf"s),
            ImageFormat::kHeif);
  // Major brand is not an image brand, a compatible brand is.
  EXPECT_EQ(DetectImageFormat("\0\0\0\x18"
                              "ftypMA1B\0\0\0\0mif1avif"s),
            ImageFormat::kHeif);
  EXPECT_EQ(DetectImageFormat("\xFF\x0A\xFA\x1F"s), ImageFormat::kJpegXl);
  EXPECT_EQ(DetectImageFormat("\0\0\0\x0CJXL \x0D\x0A\x87\x0A"s), ImageFormat::kJpegXl);
  EXPECT_EQ(DetectImageFormat("\0\0\0\x0CjP  \x0D\x0A\x87\x0A"s), ImageFormat::kJpeg2000);
  EXPECT_EQ(DetectImageFormat("\xFF\x4F\xFF\x51"s), ImageFormat::kJpeg2000);
}

TEST(DetectImageFormatTest, NotImages) {
  EXPECT_EQ(DetectImageFormat(""), ImageFormat::kUnknown);
  EXPECT_EQ(DetectImageFormat("\xFF"s), ImageFormat::kUnknown);
  EXPECT_EQ(DetectImageFormat("\xFF\xD8"s), ImageFormat::kUnknown);
  EXPECT_EQ(DetectImageFormat("hello, world\n"), ImageFormat::kUnknown);
  EXPECT_EQ(DetectImageFormat("BMW owners' club minutes, 2024\n"), ImageFormat::kUnknown);
  EXPECT_EQ(DetectImageFormat("GIF88a"), ImageFormat::kUnknown);
  EXPECT_EQ(DetectImageFormat("RIFF\x10\0\0\0WAVEfmt "s), ImageFormat::kUnknown);
  // An MP4 video shares the ftyp box but has no image brand.
  EXPECT_EQ(DetectImageFormat("\0\0\0\x18"
                              "ftypisom\0\0\0\0isomavc1"s),
            ImageFormat::kUnknown);
  EXPECT_EQ(DetectImageFormat("%PDF-1.7\n"), ImageFormat::kUnknown);
}

// Detection looks at bytes only: a PNG saved under a .jpg name is a PNG.
TEST(DetectImageFormatTest, PngNamedJpgIsPng) {
  const std::string path = ::testing::TempDir() + "/really_a_png.jpg";
  ti::WriteFile(path, ti::MakePng(8, 8));
  absl::StatusOr<std::string> bytes = ReadFile(path);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(DetectImageFormat(*bytes), ImageFormat::kPng);
}

TEST(ImageFormatNameTest, Names) {
  EXPECT_STREQ(ImageFormatName(ImageFormat::kUnknown), "unknown");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kJpeg), "jpeg");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kPng), "png");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kGif), "gif");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kWebp), "webp");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kBmp), "bmp");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kTiff), "tiff");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kHeif), "heif");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kJpegXl), "jpeg-xl");
  EXPECT_STREQ(ImageFormatName(ImageFormat::kJpeg2000), "jpeg2000");
}

}  // namespace
}  // namespace retrain::image
