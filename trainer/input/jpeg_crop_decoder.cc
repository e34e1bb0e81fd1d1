#include "trainer/input/jpeg_crop_decoder.h"

// clang-format off
#include <cstdio>    // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstring>

#include "trainer/trainer_error.h"

#if !defined(LIBJPEG_TURBO_VERSION) && !defined(LIBJPEG_TURBO_VERSION_NUMBER)
#error "retrain_trainer_input needs libjpeg-turbo (jpeg_crop_scanline, jpeg_skip_scanlines)"
#endif

namespace retrain::trainer {

// libjpeg reports errors through error_exit, which must not return: the
// handler below records the message and longjmp()s back to the phase
// function that called libjpeg. Each phase function calls setjmp() on entry
// and holds no C++ objects with destructors, so the jump skips only C frames.
struct ErrorManager {
  jpeg_error_mgr pub;  // first, so that cinfo->err can be cast back
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

struct JpegCropDecoder::Impl {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  bool created = false;
  bool have_header = false;
  ImageSource source = ImageSource::kDatasetRecord;
  std::string where;
  std::vector<JSAMPROW> rows;
};

namespace {

[[noreturn]] void OnErrorExit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings: data that ends early is an error (libjpeg would pad it with
// grey); others (e.g. extraneous bytes before a marker) are harmless.
void OnEmitMessage(j_common_ptr cinfo, int msg_level) {
  if (msg_level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) OnErrorExit(cinfo);
}

void OnOutputMessage(j_common_ptr /*cinfo*/) {}

// --- phases: libjpeg calls only, each behind its own setjmp -----------------

bool PhaseCreate(JpegCropDecoder::Impl* d) {
  if (setjmp(d->err.jump) != 0) return false;
  jpeg_create_decompress(&d->cinfo);
  return true;
}

bool PhaseHeader(JpegCropDecoder::Impl* d, const uint8_t* data, size_t size) {
  if (setjmp(d->err.jump) != 0) {
    jpeg_abort_decompress(&d->cinfo);
    return false;
  }
  jpeg_abort_decompress(&d->cinfo);  // forget the previous image
  jpeg_mem_src(&d->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&d->cinfo, TRUE);
  return true;
}

// Starts decompression at scale_num/8 to RGB and, when crop_width > 0, crops
// the output columns to [*x, *x + *crop_width) (widened by libjpeg to iMCU
// boundaries: *x and *crop_width are updated).
bool PhaseStart(JpegCropDecoder::Impl* d, int scale_num, JDIMENSION* x, JDIMENSION* crop_width) {
  if (setjmp(d->err.jump) != 0) {
    jpeg_abort_decompress(&d->cinfo);
    return false;
  }
  jpeg_decompress_struct& c = d->cinfo;
  c.scale_num = static_cast<unsigned>(scale_num);
  c.scale_denom = 8;
  c.out_color_space = JCS_RGB;
  c.dct_method = JDCT_IFAST;  // TensorFlow's decode_jpeg default
  c.do_fancy_upsampling = TRUE;
  c.do_block_smoothing = FALSE;
  c.buffered_image = FALSE;
  c.quantize_colors = FALSE;
  jpeg_start_decompress(&c);
  if (*crop_width > 0) jpeg_crop_scanline(&c, x, crop_width);
  return true;
}

// Skips `skip` rows, reads rows [skip, end) into `rows`, then stops.
bool PhaseRead(JpegCropDecoder::Impl* d, JDIMENSION skip, JDIMENSION end, JSAMPROW* rows) {
  if (setjmp(d->err.jump) != 0) {
    jpeg_abort_decompress(&d->cinfo);
    return false;
  }
  jpeg_decompress_struct& c = d->cinfo;
  if (skip > 0 && jpeg_skip_scanlines(&c, skip) != skip) {
    ERREXIT(&c, JERR_BAD_STATE);  // cannot happen for an in-memory source
  }
  while (c.output_scanline < end) {
    const JDIMENSION got =
        jpeg_read_scanlines(&c, rows + (c.output_scanline - skip), end - c.output_scanline);
    if (got == 0) ERREXIT(&c, JERR_INPUT_EMPTY);
  }
  // Nothing below the crop is needed: stop without reading the rest.
  jpeg_abort_decompress(&c);
  return true;
}

JDIMENSION ScaledSize(JDIMENSION size, int scale_num) {
  // libjpeg: jdiv_round_up(size * scale_num, scale_denom).
  return static_cast<JDIMENSION>((static_cast<uint64_t>(size) * scale_num + 7) / 8);
}

}  // namespace

int ChooseDctScale(int crop_width, int crop_height, int out_width, int out_height) {
  for (int num : {1, 2, 4}) {
    if (static_cast<int64_t>(crop_width) * num >= static_cast<int64_t>(out_width) * 8 &&
        static_cast<int64_t>(crop_height) * num >= static_cast<int64_t>(out_height) * 8) {
      return num;
    }
  }
  return 8;
}

JpegCropDecoder::JpegCropDecoder(ImageSource source) : impl_(std::make_unique<Impl>()) {
  impl_->source = source;
  std::memset(&impl_->cinfo, 0, sizeof(impl_->cinfo));
  impl_->cinfo.err = jpeg_std_error(&impl_->err.pub);
  impl_->err.pub.error_exit = OnErrorExit;
  impl_->err.pub.emit_message = OnEmitMessage;
  impl_->err.pub.output_message = OnOutputMessage;
  if (!PhaseCreate(impl_.get())) {
    throw TrainerError(TrainerError::Kind::kInternal,
                       std::string("cannot set up libjpeg: ") + impl_->err.message);
  }
  impl_->created = true;
}

JpegCropDecoder::~JpegCropDecoder() {
  if (impl_->created) jpeg_destroy_decompress(&impl_->cinfo);
}

namespace {

[[noreturn]] void Fail(const JpegCropDecoder::Impl& d, const char* stage) {
  std::string message =
      d.where + ": cannot decode the JPEG image (" + stage + ": " + d.err.message + ")";
  const bool record = d.source == ImageSource::kDatasetRecord;
  if (d.err.pub.msg_code == JERR_CONVERSION_NOTIMPL) {
    message += record ? "; its colour space cannot become RGB (CMYK?): rebuild the dataset with "
                        "retrain build-dataset, which converts such images"
                      : "; its colour space cannot become RGB (CMYK?): convert it to an RGB JPEG";
  } else {
    message += record ? "; the record's image is damaged: rebuild the dataset with retrain "
                        "build-dataset"
                      : "; the file is damaged or cut short";
  }
  throw TrainerError(TrainerError::Kind::kData, message);
}

}  // namespace

JpegCropDecoder::Header JpegCropDecoder::ReadHeader(const uint8_t* data, size_t size,
                                                    const std::string& where) {
  impl_->where = where;
  impl_->have_header = false;
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) {
    throw TrainerError(TrainerError::Kind::kData,
                       where + (impl_->source == ImageSource::kDatasetRecord
                                    ? ": image/encoded is not a JPEG image (no FF D8 start "
                                      "marker); rebuild the dataset with retrain build-dataset"
                                    : ": not a JPEG image (no FF D8 start marker); convert it "
                                      "to JPEG first"));
  }
  if (!PhaseHeader(impl_.get(), data, size)) Fail(*impl_, "header");
  impl_->have_header = true;
  Header h;
  h.width = static_cast<int>(impl_->cinfo.image_width);
  h.height = static_cast<int>(impl_->cinfo.image_height);
  h.components = impl_->cinfo.num_components;
  return h;
}

void JpegCropDecoder::DecodeCrop(const CropRect& crop_in, int out_width, int out_height,
                                 bool dct_scaling, DecodedImage* out) {
  if (!impl_->have_header) {
    throw TrainerError(TrainerError::Kind::kInternal, "JpegCropDecoder: DecodeCrop without header");
  }
  impl_->have_header = false;
  const int image_w = static_cast<int>(impl_->cinfo.image_width);
  const int image_h = static_cast<int>(impl_->cinfo.image_height);
  CropRect crop = crop_in;
  crop.x = std::clamp(crop.x, 0, image_w - 1);
  crop.y = std::clamp(crop.y, 0, image_h - 1);
  crop.width = std::clamp(crop.width, 1, image_w - crop.x);
  crop.height = std::clamp(crop.height, 1, image_h - crop.y);

  const int num = dct_scaling ? ChooseDctScale(crop.width, crop.height, out_width, out_height) : 8;
  const JDIMENSION scaled_w = ScaledSize(impl_->cinfo.image_width, num);
  const JDIMENSION scaled_h = ScaledSize(impl_->cinfo.image_height, num);
  const double s = num / 8.0;
  const double fx0 = crop.x * s, fx1 = (crop.x + crop.width) * s;
  const double fy0 = crop.y * s, fy1 = (crop.y + crop.height) * s;
  const auto ix0 = static_cast<JDIMENSION>(std::floor(fx0));
  const JDIMENSION ix1 = std::min(static_cast<JDIMENSION>(std::ceil(fx1)), scaled_w);
  const auto iy0 = static_cast<JDIMENSION>(std::floor(fy0));
  const JDIMENSION iy1 = std::min(static_cast<JDIMENSION>(std::ceil(fy1)), scaled_h);

  // Two more columns each side when the image has them: libjpeg-turbo
  // upsamples chroma at the edges of a cropped region without the
  // neighbouring samples, so those columns can differ from a full decode by
  // a few levels; the margin keeps them outside the crop.
  constexpr JDIMENSION kMargin = 2;
  JDIMENSION x = ix0 > kMargin ? ix0 - kMargin : 0;
  JDIMENSION width = std::min(ix1 + kMargin, scaled_w) - x;
  if (x == 0 && width == scaled_w) width = 0;  // no column crop needed
  if (!PhaseStart(impl_.get(), num, &x, &width)) Fail(*impl_, "start");
  if (impl_->cinfo.output_components != 3) {
    jpeg_abort_decompress(&impl_->cinfo);
    throw TrainerError(TrainerError::Kind::kInternal,
                       impl_->where + ": libjpeg gave " +
                           std::to_string(impl_->cinfo.output_components) +
                           " components for RGB output");
  }
  out->scale_num = num;
  out->width = static_cast<int>(impl_->cinfo.output_width);  // the cropped width
  out->height = static_cast<int>(iy1 - iy0);
  out->stride = out->width * 3;
  out->roi = {static_cast<float>(fx0 - x), static_cast<float>(fy0 - iy0),
              static_cast<float>(fx1 - fx0), static_cast<float>(fy1 - fy0)};
  out->pixels.resize(static_cast<size_t>(out->stride) * out->height);
  impl_->rows.resize(static_cast<size_t>(out->height));
  for (int r = 0; r < out->height; ++r) {
    impl_->rows[r] = out->pixels.data() + static_cast<size_t>(r) * out->stride;
  }
  if (!PhaseRead(impl_.get(), iy0, iy1, impl_->rows.data())) Fail(*impl_, "scanlines");
}

void JpegCropDecoder::DecodeFull(DecodedImage* out) {
  if (!impl_->have_header) {
    throw TrainerError(TrainerError::Kind::kInternal, "JpegCropDecoder: DecodeFull without header");
  }
  impl_->have_header = false;
  JDIMENSION x = 0, width = 0;
  if (!PhaseStart(impl_.get(), 8, &x, &width)) Fail(*impl_, "start");
  out->scale_num = 8;
  out->width = static_cast<int>(impl_->cinfo.output_width);
  out->height = static_cast<int>(impl_->cinfo.output_height);
  out->stride = out->width * 3;
  out->roi = {0, 0, static_cast<float>(out->width), static_cast<float>(out->height)};
  out->pixels.resize(static_cast<size_t>(out->stride) * out->height);
  impl_->rows.resize(static_cast<size_t>(out->height));
  for (int r = 0; r < out->height; ++r) {
    impl_->rows[r] = out->pixels.data() + static_cast<size_t>(r) * out->stride;
  }
  if (!PhaseRead(impl_.get(), 0, impl_->cinfo.output_height, impl_->rows.data())) {
    Fail(*impl_, "scanlines");
  }
}

}  // namespace retrain::trainer
