#include "worker/image/image_probe.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_images.h"
#include "worker/image/image_library.h"

namespace retrain::image {
namespace {

using namespace std::string_literals;
using retrain::v1::SkipReason;
namespace ti = retrain::test_images;

class ImageProbeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(InitImageLibrary("image_test").ok()); }

  static ProbeOutcome Probe(std::string_view bytes) { return ProbeImage(bytes, ProbeOptions()); }
};

// Offset of the SOF marker (FF C0..C3) in a JPEG made by test_images.
size_t SofOffset(const std::string& jpeg) {
  for (size_t i = 2; i + 1 < jpeg.size(); ++i) {
    const auto b0 = static_cast<unsigned char>(jpeg[i]);
    const auto b1 = static_cast<unsigned char>(jpeg[i + 1]);
    if (b0 == 0xFF && b1 >= 0xC0 && b1 <= 0xC3) return i;
  }
  return 0;
}

TEST_F(ImageProbeTest, BaselineJpegIsPassthrough) {
  const ProbeOutcome outcome = Probe(ti::MakeJpeg(500, 375));
  ASSERT_TRUE(outcome.ok) << outcome.detail;
  EXPECT_EQ(outcome.info.format, ImageFormat::kJpeg);
  EXPECT_EQ(outcome.info.width, 500);
  EXPECT_EQ(outcome.info.height, 375);
  EXPECT_TRUE(outcome.info.passthrough);
  EXPECT_EQ(outcome.info.conversion, "");
}

TEST_F(ImageProbeTest, ExifOrientationOneIsPassthrough) {
  const ProbeOutcome outcome = Probe(ti::MakeExifJpeg(64, 48, 1));
  ASSERT_TRUE(outcome.ok) << outcome.detail;
  EXPECT_TRUE(outcome.info.passthrough);
}

struct ConversionCase {
  const char* name;
  std::string bytes;
  ImageFormat format;
  int width;
  int height;
  const char* conversion;
};

TEST_F(ImageProbeTest, ConversionReasons) {
  const ConversionCase cases[] = {
      {"gray jpeg", ti::MakeGrayJpeg(64, 48), ImageFormat::kJpeg, 64, 48, "grayscale jpeg"},
      {"cmyk jpeg", ti::MakeCmykJpeg(64, 48), ImageFormat::kJpeg, 64, 48, "cmyk jpeg"},
      {"rgb jpeg", ti::MakeRgbJpeg(64, 48), ImageFormat::kJpeg, 64, 48, "rgb jpeg"},
      {"progressive", ti::MakeProgressiveJpeg(64, 48), ImageFormat::kJpeg, 64, 48,
       "progressive jpeg"},
      {"arithmetic", ti::MakeArithmeticJpeg(64, 48), ImageFormat::kJpeg, 64, 48,
       "arithmetic-coded jpeg"},
      {"exif 6", ti::MakeExifJpeg(64, 48, 6), ImageFormat::kJpeg, 48, 64, "exif orientation 6"},
      {"exif 3", ti::MakeExifJpeg(64, 48, 3), ImageFormat::kJpeg, 64, 48, "exif orientation 3"},
      {"png", ti::MakePng(64, 48), ImageFormat::kPng, 64, 48, "png"},
      {"png rgba", ti::MakePngRgba(64, 48), ImageFormat::kPng, 64, 48, "png"},
      {"png 16", ti::MakePng16(64, 48), ImageFormat::kPng, 64, 48, "png"},
      {"png gray", ti::MakeGrayPng(64, 48), ImageFormat::kPng, 64, 48, "png"},
      {"gif", ti::MakeGif(64, 48), ImageFormat::kGif, 64, 48, "gif"},
      {"webp", ti::MakeWebp(64, 48), ImageFormat::kWebp, 64, 48, "webp"},
      {"bmp", ti::MakeBmp(64, 48), ImageFormat::kBmp, 64, 48, "bmp"},
      {"tiff", ti::MakeTiff(64, 48), ImageFormat::kTiff, 64, 48, "tiff"},
  };
  for (const ConversionCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ProbeOutcome outcome = Probe(c.bytes);
    ASSERT_TRUE(outcome.ok) << outcome.detail;
    EXPECT_EQ(outcome.info.format, c.format);
    EXPECT_EQ(outcome.info.width, c.width);
    EXPECT_EQ(outcome.info.height, c.height);
    EXPECT_FALSE(outcome.info.passthrough);
    EXPECT_EQ(outcome.info.conversion, c.conversion);
  }
}

TEST_F(ImageProbeTest, SeveralConversionReasons) {
  const ProbeOutcome outcome = Probe(ti::InsertExifOrientation(ti::MakeProgressiveJpeg(64, 48), 8));
  ASSERT_TRUE(outcome.ok) << outcome.detail;
  EXPECT_EQ(outcome.info.width, 48);
  EXPECT_EQ(outcome.info.height, 64);
  EXPECT_EQ(outcome.info.conversion, "progressive jpeg, exif orientation 8");
}

TEST_F(ImageProbeTest, EmptyFile) {
  const ProbeOutcome outcome = Probe("");
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.reason, v1::SKIP_REASON_EMPTY);
}

TEST_F(ImageProbeTest, TextIsNotAnImage) {
  // Whatever the file was called (say notes.jpg), its bytes are text.
  const ProbeOutcome outcome = Probe("Shopping list:\n- eggs\n- milk\n");
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.reason, v1::SKIP_REASON_NOT_AN_IMAGE);
  EXPECT_NE(outcome.detail, "");
}

TEST_F(ImageProbeTest, TruncatedJpeg) {
  const std::string jpeg = ti::MakeJpeg(500, 375);
  for (double keep : {0.01, 0.3, 0.5, 0.9, 0.999}) {
    SCOPED_TRACE(keep);
    const ProbeOutcome outcome = Probe(ti::Truncate(jpeg, keep));
    EXPECT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.reason, v1::SKIP_REASON_TRUNCATED) << outcome.detail;
  }
  // Cut inside the markers, before any scan data.
  const ProbeOutcome header_only = Probe(jpeg.substr(0, 20));
  EXPECT_EQ(header_only.reason, v1::SKIP_REASON_TRUNCATED) << header_only.detail;
  // Without the final EOI marker only.
  const ProbeOutcome no_eoi = Probe(jpeg.substr(0, jpeg.size() - 2));
  EXPECT_EQ(no_eoi.reason, v1::SKIP_REASON_TRUNCATED) << no_eoi.detail;
}

TEST_F(ImageProbeTest, TruncatedProgressiveAndCmykJpeg) {
  for (const std::string& jpeg : {ti::MakeProgressiveJpeg(200, 150), ti::MakeCmykJpeg(200, 150)}) {
    const ProbeOutcome outcome = Probe(ti::Truncate(jpeg, 0.6));
    EXPECT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.reason, v1::SKIP_REASON_TRUNCATED) << outcome.detail;
  }
}

TEST_F(ImageProbeTest, CorruptJpegScanData) {
  const std::string jpeg = ti::MakeJpeg(500, 375);
  const size_t middle = ti::JpegScanDataMiddle(jpeg);
  ASSERT_GT(middle, 0u);

  // A restart marker where the scan has none: libjpeg's JWRN_HIT_MARKER.
  std::string marker = jpeg;
  marker[middle] = '\xFF';
  marker[middle + 1] = '\xD3';
  // 200 bytes of Huffman data overwritten.
  std::string smeared = jpeg;
  for (size_t i = middle; i < middle + 200; ++i) smeared[i] = '\xFE';
  // 500 bytes of scan data cut out of the middle.
  std::string gap = jpeg;
  gap.erase(middle, 500);

  for (const std::string& damaged : {marker, smeared, gap}) {
    const ProbeOutcome outcome = Probe(damaged);
    EXPECT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.reason, v1::SKIP_REASON_CORRUPT) << outcome.detail;
    EXPECT_NE(outcome.detail.find("libjpeg"), std::string::npos) << outcome.detail;
  }
}

// --verify structure: the same answers for good JPEGs, a cut or a marker
// out of place still refused, damage inside the entropy-coded data not seen
// (what the mode gives up, and what the full check sees).
TEST_F(ImageProbeTest, StructureOnlyWalksTheMarkersToEoiWithoutDecoding) {
  ProbeOptions structure;
  structure.jpeg_structure_only = true;
  for (const std::string& jpeg : {ti::MakeJpeg(500, 375), ti::MakeProgressiveJpeg(200, 150),
                                  ti::MakeCmykJpeg(200, 150), ti::MakeExifJpeg(64, 48, 6)}) {
    const ProbeOutcome full = Probe(jpeg);
    const ProbeOutcome walked = ProbeImage(jpeg, structure);
    ASSERT_TRUE(full.ok) << full.detail;
    ASSERT_TRUE(walked.ok) << walked.detail;
    EXPECT_EQ(walked.info.width, full.info.width);
    EXPECT_EQ(walked.info.height, full.info.height);
    EXPECT_EQ(walked.info.passthrough, full.info.passthrough);
    EXPECT_EQ(walked.info.conversion, full.info.conversion);
  }

  const std::string jpeg = ti::MakeJpeg(500, 375);
  for (double keep : {0.3, 0.5, 0.9, 0.999}) {
    SCOPED_TRACE(keep);
    const ProbeOutcome cut = ProbeImage(ti::Truncate(jpeg, keep), structure);
    EXPECT_EQ(cut.reason, v1::SKIP_REASON_TRUNCATED) << cut.detail;
    EXPECT_EQ(cut.detail.rfind("structure: the file ends in scan 1", 0), 0u) << cut.detail;
  }
  EXPECT_EQ(ProbeImage(jpeg.substr(0, 20), structure).reason, v1::SKIP_REASON_TRUNCATED);
  EXPECT_EQ(ProbeImage(jpeg.substr(0, jpeg.size() - 2), structure).reason,
            v1::SKIP_REASON_TRUNCATED);
  const std::string progressive = ti::MakeProgressiveJpeg(200, 150);
  EXPECT_EQ(ProbeImage(ti::Truncate(progressive, 0.6), structure).reason,
            v1::SKIP_REASON_TRUNCATED);

  const size_t middle = ti::JpegScanDataMiddle(jpeg);
  ASSERT_GT(middle, 0u);
  // A frame header where only scans may follow.
  std::string sof = jpeg;
  sof[middle] = '\xFF';
  sof[middle + 1] = '\xC0';
  const ProbeOutcome misplaced = ProbeImage(sof, structure);
  EXPECT_EQ(misplaced.reason, v1::SKIP_REASON_CORRUPT) << misplaced.detail;
  EXPECT_EQ(misplaced.detail, "structure: marker 0xFFC0 at byte " + std::to_string(middle) +
                                  " where only scans may follow");
  // A comment segment whose length runs past the end.
  std::string long_segment = jpeg.substr(0, middle) + "\xFF\xFE\x7F\xFF";
  EXPECT_EQ(ProbeImage(long_segment, structure).reason, v1::SKIP_REASON_TRUNCATED);

  // Huffman data overwritten: the full check refuses it, a walk cannot see it.
  std::string smeared = jpeg;
  for (size_t i = middle; i < middle + 200; ++i) smeared[i] = '\xFE';
  EXPECT_EQ(Probe(smeared).reason, v1::SKIP_REASON_CORRUPT);
  EXPECT_TRUE(ProbeImage(smeared, structure).ok);
}

TEST_F(ImageProbeTest, CorruptJpegHeader) {
  std::string jpeg = ti::MakeJpeg(64, 48);
  // Overwrite the first marker after SOI with garbage that is not a marker.
  jpeg[2] = 'x';
  jpeg[3] = 'y';
  const ProbeOutcome outcome = Probe(jpeg);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.reason, v1::SKIP_REASON_NOT_AN_IMAGE);  // FF D8 FF is the magic

  std::string bad_sof = ti::MakeJpeg(64, 48);
  const size_t sof = SofOffset(bad_sof);
  ASSERT_GT(sof, 0u);
  bad_sof[sof + 9] = 7;  // 7 components
  const ProbeOutcome sof_outcome = Probe(bad_sof);
  EXPECT_FALSE(sof_outcome.ok);
  EXPECT_EQ(sof_outcome.reason, v1::SKIP_REASON_CORRUPT) << sof_outcome.detail;
}

TEST_F(ImageProbeTest, UnsupportedJpegVariants) {
  const std::string jpeg = ti::MakeJpeg(64, 48);
  const size_t sof = SofOffset(jpeg);
  ASSERT_GT(sof, 0u);
  std::string twelve_bit = jpeg;
  twelve_bit[sof + 4] = 12;  // sample precision
  std::string lossless = jpeg;
  lossless[sof + 1] = '\xC3';  // SOF3: lossless
  for (const std::string& variant : {twelve_bit, lossless}) {
    const ProbeOutcome outcome = Probe(variant);
    EXPECT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.reason, v1::SKIP_REASON_UNSUPPORTED) << outcome.detail;
  }
}

TEST_F(ImageProbeTest, TruncatedOtherFormats) {
  const struct {
    const char* name;
    std::string bytes;
  } cases[] = {
      {"png", ti::MakePng(200, 150)},   {"png 16", ti::MakePng16(200, 150)},
      {"gif", ti::MakeGif(200, 150)},   {"webp", ti::MakeWebp(200, 150)},
      {"tiff", ti::MakeTiff(200, 150)}, {"bmp", ti::MakeBmp(200, 150)},
  };
  for (const auto& c : cases) {
    for (double keep : {0.1, 0.5, 0.95}) {
      SCOPED_TRACE(std::string(c.name) + " " + std::to_string(keep));
      const ProbeOutcome outcome = Probe(ti::Truncate(c.bytes, keep));
      EXPECT_FALSE(outcome.ok);
      EXPECT_EQ(outcome.reason, v1::SKIP_REASON_TRUNCATED) << outcome.detail;
    }
  }
}

TEST_F(ImageProbeTest, PngEndsAtIend) {
  const std::string png = ti::MakePng(64, 48);
  // Every row is there, but not the IEND chunk: still a truncated file.
  const ProbeOutcome no_iend = Probe(png.substr(0, png.size() - 12));
  EXPECT_FALSE(no_iend.ok);
  EXPECT_EQ(no_iend.reason, v1::SKIP_REASON_TRUNCATED) << no_iend.detail;
  // Bytes after IEND are ignored.
  EXPECT_TRUE(Probe(png + "trailing bytes").ok);
}

TEST_F(ImageProbeTest, CorruptPngData) {
  const std::string png = ti::MakePng(200, 150);
  // Damage compressed pixel data in the middle of the file: the IDAT CRC
  // (and the deflate stream) no longer match.
  std::vector<size_t> offsets;
  for (size_t i = png.size() / 2; i < png.size() / 2 + 64; ++i) offsets.push_back(i);
  const ProbeOutcome outcome = Probe(ti::FlipBits(png, offsets));
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.reason, v1::SKIP_REASON_CORRUPT) << outcome.detail;
}

TEST_F(ImageProbeTest, HugePngHeaderIsRefusedBeforeDecoding) {
  const auto start = std::chrono::steady_clock::now();
  const ProbeOutcome outcome = Probe(ti::MakeHugePngHeader(100000, 100000));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.reason, v1::SKIP_REASON_TOO_MANY_PIXELS) << outcome.detail;
  // 30 GB of pixels were never allocated or decoded.
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST_F(ImageProbeTest, HugeBmpHeaderIsRefusedBeforeDecoding) {
  // ImageMagick, which reads BMP for libvips, decodes everything up front;
  // the limit must come first.
  std::string bmp = ti::MakeBmp(8, 8);
  bmp.replace(18, 8, "\xA0\x86\x01\x00\xA0\x86\x01\x00"s);  // 100000 x 100000
  const ProbeOutcome outcome = Probe(bmp);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.reason, v1::SKIP_REASON_TOO_MANY_PIXELS) << outcome.detail;
}

TEST_F(ImageProbeTest, HugeJpegHeaderIsRefusedBeforeDecoding) {
  std::string jpeg = ti::MakeJpeg(64, 48);
  const size_t sof = SofOffset(jpeg);
  ASSERT_GT(sof, 0u);
  // Height and width 60000.
  jpeg[sof + 5] = '\xEA';
  jpeg[sof + 6] = '\x60';
  jpeg[sof + 7] = '\xEA';
  jpeg[sof + 8] = '\x60';
  const ProbeOutcome outcome = Probe(jpeg);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.reason, v1::SKIP_REASON_TOO_MANY_PIXELS) << outcome.detail;
}

TEST_F(ImageProbeTest, MaxPixelsOption) {
  ProbeOptions options;
  options.max_pixels = 64 * 48;
  for (const std::string& bytes : {ti::MakeJpeg(64, 48), ti::MakePng(64, 48)}) {
    EXPECT_TRUE(ProbeImage(bytes, options).ok);
  }
  options.max_pixels = 64 * 48 - 1;
  for (const std::string& bytes :
       {ti::MakeJpeg(64, 48), ti::MakePng(64, 48), ti::MakeBmp(64, 48)}) {
    const ProbeOutcome outcome = ProbeImage(bytes, options);
    EXPECT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.reason, v1::SKIP_REASON_TOO_MANY_PIXELS) << outcome.detail;
  }
}

TEST_F(ImageProbeTest, DamagedNewerContainers) {
  // Right magic, nonsense after it: refused, whether or not this libvips
  // has the loader.
  const std::string junk(200, '\x5A');
  for (const std::string& bytes : {
           "\0\0\0\x18"
           "ftypheic\0\0\0\0mif1heic"s +
               junk,
           "\0\0\0\x0CJXL \x0D\x0A\x87\x0A"s + junk,
           "\0\0\0\x0CjP  \x0D\x0A\x87\x0A"s + junk,
       }) {
    const ProbeOutcome outcome = Probe(bytes);
    EXPECT_FALSE(outcome.ok);
    EXPECT_TRUE(outcome.reason == v1::SKIP_REASON_CORRUPT ||
                outcome.reason == v1::SKIP_REASON_TRUNCATED ||
                outcome.reason == v1::SKIP_REASON_UNSUPPORTED)
        << SkipReason_Name(outcome.reason) << " " << outcome.detail;
  }
}

TEST_F(ImageProbeTest, SafeFromManyThreads) {
  const std::vector<std::string> inputs = {
      ti::MakeJpeg(120, 90),
      ti::MakePng(120, 90),
      ti::MakeGif(120, 90),
      ti::MakeCmykJpeg(120, 90),
      ti::Truncate(ti::MakeJpeg(120, 90), 0.5),
      ti::Truncate(ti::MakePng(120, 90), 0.5),
      ti::MakeWebp(120, 90),
      ti::MakeTiff(120, 90),
  };
  std::vector<ProbeOutcome> expected;
  for (const std::string& input : inputs) expected.push_back(Probe(input));

  constexpr int kThreads = 4;
  constexpr int kRounds = 5;
  std::vector<std::vector<ProbeOutcome>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        for (const std::string& input : inputs) results[t].push_back(Probe(input));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    for (size_t i = 0; i < results[t].size(); ++i) {
      const ProbeOutcome& want = expected[i % inputs.size()];
      const ProbeOutcome& got = results[t][i];
      EXPECT_EQ(got.ok, want.ok) << i;
      EXPECT_EQ(got.reason, want.reason) << i;
      EXPECT_EQ(got.info.passthrough, want.info.passthrough) << i;
      EXPECT_EQ(got.info.width, want.info.width) << i;
    }
  }
}

}  // namespace
}  // namespace retrain::image
