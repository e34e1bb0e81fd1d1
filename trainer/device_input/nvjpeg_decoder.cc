// MakeNvjpegDecoder(): nvJPEG where the build has it (RETRAIN_WITH_NVJPEG,
// set by CMake when the CUDA toolkit's libnvjpeg is found beside a CUDA
// LibTorch), else a reason.
#include "trainer/device_input/jpeg_batch_decoder.h"

#ifdef RETRAIN_WITH_NVJPEG
#include <cuda_runtime_api.h>
#include <nvjpeg.h>
#endif

namespace retrain::trainer {

#ifdef RETRAIN_WITH_NVJPEG
namespace {

const char* StatusName(nvjpegStatus_t s) {
  switch (s) {
    case NVJPEG_STATUS_SUCCESS:
      return "success";
    case NVJPEG_STATUS_NOT_INITIALIZED:
      return "not initialized";
    case NVJPEG_STATUS_INVALID_PARAMETER:
      return "invalid parameter";
    case NVJPEG_STATUS_BAD_JPEG:
      return "bad JPEG";
    case NVJPEG_STATUS_JPEG_NOT_SUPPORTED:
      return "JPEG not supported";
    case NVJPEG_STATUS_ALLOCATOR_FAILURE:
      return "allocator failure";
    case NVJPEG_STATUS_EXECUTION_FAILED:
      return "execution failed";
    case NVJPEG_STATUS_ARCH_MISMATCH:
      return "not supported on this GPU";
    case NVJPEG_STATUS_INTERNAL_ERROR:
      return "internal error";
    case NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED:
      return "implementation not supported";
    default:
      return "error";
  }
}

// A handle and its decode state, for one backend.
struct Codec {
  nvjpegHandle_t handle = nullptr;
  nvjpegJpegState_t state = nullptr;
  int batch_size = 0;  // what nvjpegDecodeBatchedInitialize was last told

  ~Codec() {
    if (state) nvjpegJpegStateDestroy(state);
    if (handle) nvjpegDestroy(handle);
  }
  // A handle and state on `backend`; nullptr, and *status where given, when
  // either cannot be made.
  static std::unique_ptr<Codec> Open(nvjpegBackend_t backend, nvjpegStatus_t* status = nullptr) {
    auto codec = std::make_unique<Codec>();
    nvjpegStatus_t s = nvjpegCreateEx(backend, nullptr, nullptr, 0, &codec->handle);
    if (s == NVJPEG_STATUS_SUCCESS) s = nvjpegJpegStateCreate(codec->handle, &codec->state);
    if (status != nullptr) *status = s;
    if (s != NVJPEG_STATUS_SUCCESS) return nullptr;
    return codec;
  }
};

class NvjpegDecoder : public JpegBatchDecoder {
 public:
  // The GPU's JPEG engines where it has them, else nvJPEG's default (hybrid)
  // backend; nullptr and *why when neither opens.
  static std::unique_ptr<NvjpegDecoder> Create(const torch::Device& device, std::string* why) {
    auto d = std::unique_ptr<NvjpegDecoder>(new NvjpegDecoder(device));
    if (cudaSetDevice(device.index()) != cudaSuccess) {
      *why = "cannot select CUDA device " + std::to_string(device.index());
      return nullptr;
    }
    d->batched_ = Codec::Open(NVJPEG_BACKEND_HARDWARE);
    if (d->batched_) {
      d->hardware_ = true;
      d->name_ = "nvJPEG (hardware)";
      return d;
    }
    nvjpegStatus_t s = NVJPEG_STATUS_SUCCESS;
    d->batched_ = Codec::Open(NVJPEG_BACKEND_DEFAULT, &s);
    if (!d->batched_) {
      *why = std::string("nvJPEG did not start: ") + StatusName(s);
      return nullptr;
    }
    d->name_ = "nvJPEG (hybrid)";
    return d;
  }

  void Decode(const std::vector<EncodedImage>& batch, std::vector<torch::Tensor>* images,
              std::vector<std::string>* errors) override {
    cudaSetDevice(device_.index());
    images->assign(batch.size(), torch::Tensor());
    errors->assign(batch.size(), std::string());
    std::vector<size_t> on_gpu, on_host;
    std::vector<const unsigned char*> data;
    std::vector<size_t> lengths;
    std::vector<nvjpegImage_t> destinations;
    for (size_t i = 0; i < batch.size(); ++i) {
      const EncodedImage& e = batch[i];
      const auto* bytes = reinterpret_cast<const unsigned char*>(e.jpeg.data());
      int components = 0;
      nvjpegChromaSubsampling_t subsampling = NVJPEG_CSS_UNKNOWN;
      int widths[NVJPEG_MAX_COMPONENT] = {}, heights[NVJPEG_MAX_COMPONENT] = {};
      if (nvjpegGetImageInfo(batched_->handle, bytes, e.jpeg.size(), &components, &subsampling,
                             widths, heights) != NVJPEG_STATUS_SUCCESS ||
          widths[0] != e.plan.width || heights[0] != e.plan.height) {
        on_host.push_back(i);  // libjpeg-turbo gives the error, or decodes it
        continue;
      }
      (*images)[i] = torch::empty({3, heights[0], widths[0]},
                                  torch::TensorOptions().dtype(torch::kUInt8).device(device_));
      nvjpegImage_t d{};
      uint8_t* base = (*images)[i].data_ptr<uint8_t>();
      const size_t plane = static_cast<size_t>(widths[0]) * static_cast<size_t>(heights[0]);
      for (int c = 0; c < 3; ++c) {
        d.channel[c] = base + c * plane;
        d.pitch[c] = static_cast<size_t>(widths[0]);
      }
      on_gpu.push_back(i);
      data.push_back(bytes);
      lengths.push_back(e.jpeg.size());
      destinations.push_back(d);
    }
    bool decoded = on_gpu.empty() || DecodeBatched(data, lengths, &destinations);
    if (!decoded && hardware_) {
      // The JPEG engines refused this batch (a layout they do not take, say):
      // nvJPEG's hybrid decoder from now on.
      if (auto hybrid = Codec::Open(NVJPEG_BACKEND_DEFAULT)) {
        batched_ = std::move(hybrid);
        hardware_ = false;
        name_ = "nvJPEG (hybrid; the JPEG engines refused a batch)";
        decoded = DecodeBatched(data, lengths, &destinations);
      }
    }
    if (!decoded) {
      // One image the batched decoder cannot take fails the whole call:
      // decode them one by one, and the ones that still fail on the host.
      for (size_t k = 0; k < on_gpu.size(); ++k) {
        if (!DecodeOne(data[k], lengths[k], &destinations[k])) on_host.push_back(on_gpu[k]);
      }
    }
    if (on_host.empty()) return;
    std::vector<EncodedImage> rest;
    for (size_t i : on_host) rest.push_back(batch[i]);
    std::vector<torch::Tensor> rest_images;
    std::vector<std::string> rest_errors;
    host_->Decode(rest, &rest_images, &rest_errors);
    for (size_t k = 0; k < on_host.size(); ++k) {
      (*images)[on_host[k]] = rest_images[k];
      (*errors)[on_host[k]] = rest_errors[k];
    }
  }

  std::string name() const override { return name_; }

 private:
  explicit NvjpegDecoder(const torch::Device& device)
      : device_(device), host_(MakeHostJpegDecoder(device)) {}

  bool DecodeBatched(const std::vector<const unsigned char*>& data,
                     const std::vector<size_t>& lengths, std::vector<nvjpegImage_t>* out) {
    const int n = static_cast<int>(data.size());
    if (batched_->batch_size != n) {
      if (nvjpegDecodeBatchedInitialize(batched_->handle, batched_->state, n, 1,
                                        NVJPEG_OUTPUT_RGB) != NVJPEG_STATUS_SUCCESS) {
        return false;
      }
      batched_->batch_size = n;
    }
    const nvjpegStatus_t s = nvjpegDecodeBatched(batched_->handle, batched_->state, data.data(),
                                                 lengths.data(), out->data(), nullptr);
    if (s != NVJPEG_STATUS_SUCCESS) batched_->batch_size = 0;  // re-initialise next time
    return s == NVJPEG_STATUS_SUCCESS;
  }

  bool DecodeOne(const unsigned char* data, size_t length, nvjpegImage_t* out) {
    if (!single_ && !single_unavailable_) {
      single_ = Codec::Open(NVJPEG_BACKEND_DEFAULT);
      single_unavailable_ = !single_;
    }
    if (!single_) return false;
    return nvjpegDecode(single_->handle, single_->state, data, length, NVJPEG_OUTPUT_RGB, out,
                        nullptr) == NVJPEG_STATUS_SUCCESS;
  }

  const torch::Device device_;
  std::unique_ptr<JpegBatchDecoder> host_;
  std::unique_ptr<Codec> batched_;   // hardware, or the default backend
  bool hardware_ = false;            // batched_ is the hardware backend
  std::unique_ptr<Codec> single_;    // default backend, opened on the first refusal
  bool single_unavailable_ = false;  // single_ could not be opened; not tried again
  std::string name_;
};

}  // namespace

std::unique_ptr<JpegBatchDecoder> MakeNvjpegDecoder(const torch::Device& device, std::string* why) {
  if (!device.is_cuda() || !device.has_index()) {
    *why = "nvJPEG decodes on a CUDA device (got " + device.str() + ")";
    return nullptr;
  }
  return NvjpegDecoder::Create(device, why);
}

#else

std::unique_ptr<JpegBatchDecoder> MakeNvjpegDecoder(const torch::Device&, std::string* why) {
  *why =
      "this retrain-trainer was built without nvJPEG (it needs a CUDA LibTorch and the CUDA "
      "toolkit's libnvjpeg; see RETRAIN_NVJPEG in trainer/CMakeLists.txt)";
  return nullptr;
}

#endif

}  // namespace retrain::trainer
