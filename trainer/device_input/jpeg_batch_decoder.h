// The first half of the GPU decode path: a batch's JPEGs to whole RGB
// images in a device's memory.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "trainer/input/input_pipeline.h"

namespace retrain::trainer {

class JpegBatchDecoder {
 public:
  virtual ~JpegBatchDecoder() = default;

  // Sets (*images)[i] to batch[i] decoded, uint8 [3, height, width] (planar
  // RGB) on the decoder's device, or leaves it undefined and sets
  // (*errors)[i] to "<where>: <why>" when the image does not decode. The
  // JPEG bytes must stay valid until the device has used them (the next
  // synchronising call on the device's default stream).
  virtual void Decode(const std::vector<EncodedImage>& batch, std::vector<torch::Tensor>* images,
                      std::vector<std::string>* errors) = 0;

  // "libjpeg-turbo (host)", "nvJPEG (hardware)", ...: for logs.
  virtual std::string name() const = 0;
};

// libjpeg-turbo on the calling thread, each image then copied to `device`:
// the decoder the GPU path is tested with on machines without a GPU, and
// nvJPEG's fallback for the images it refuses.
std::unique_ptr<JpegBatchDecoder> MakeHostJpegDecoder(const torch::Device& device);

// nvJPEG (the CUDA toolkit's) on the CUDA device `device`: one batched
// decode per batch, on the GPU's JPEG engines where it has them, else
// nvJPEG's hybrid GPU decoder; an image nvJPEG refuses is decoded by
// MakeHostJpegDecoder's decoder instead. nullptr, with *why saying so, when
// this build has no nvJPEG or `device` is not a usable CUDA device.
std::unique_ptr<JpegBatchDecoder> MakeNvjpegDecoder(const torch::Device& device, std::string* why);

}  // namespace retrain::trainer
