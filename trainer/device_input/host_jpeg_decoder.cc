#include <cstring>

#include "trainer/device_input/jpeg_batch_decoder.h"
#include "trainer/input/jpeg_crop_decoder.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

class HostJpegDecoder : public JpegBatchDecoder {
 public:
  explicit HostJpegDecoder(const torch::Device& device) : device_(device) {}

  void Decode(const std::vector<EncodedImage>& batch, std::vector<torch::Tensor>* images,
              std::vector<std::string>* errors) override {
    images->assign(batch.size(), torch::Tensor());
    errors->assign(batch.size(), std::string());
    for (size_t i = 0; i < batch.size(); ++i) {
      const EncodedImage& e = batch[i];
      try {
        decoder_.ReadHeader(reinterpret_cast<const uint8_t*>(e.jpeg.data()), e.jpeg.size(),
                            e.where);
        decoder_.DecodeFull(&decoded_);
      } catch (const TrainerError& error) {
        (*errors)[i] = error.what();
        continue;
      }
      // Interleaved rows of width * 3 bytes -> planar [3, height, width].
      const auto hwc =
          torch::from_blob(decoded_.pixels.data(), {decoded_.height, decoded_.width, 3},
                           {decoded_.stride, 3, 1}, torch::kUInt8);
      (*images)[i] = hwc.permute({2, 0, 1}).contiguous().to(device_);
    }
  }

  std::string name() const override { return "libjpeg-turbo (host)"; }

 private:
  const torch::Device device_;
  JpegCropDecoder decoder_;
  DecodedImage decoded_;
};

}  // namespace

std::unique_ptr<JpegBatchDecoder> MakeHostJpegDecoder(const torch::Device& device) {
  return std::make_unique<HostJpegDecoder>(device);
}

}  // namespace retrain::trainer
