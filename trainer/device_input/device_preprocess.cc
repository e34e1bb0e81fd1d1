#include "trainer/device_input/device_preprocess.h"

#include <string>

#include "trainer/input/resize.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

torch::Tensor Clamp01(const torch::Tensor& x) { return x.clamp(0.0, 1.0); }

// (clip to [0, 1] - 0.5) * 2, as color.cc's Finish().
torch::Tensor Finish(const torch::Tensor& x) { return (Clamp01(x) - 0.5) * 2.0; }

// color.cc's SaturationHue() on [n, 3, H, W]; saturation and dh6 (the hue
// delta in sixths of a turn) are [n, 1, 1].
torch::Tensor SaturationHue(const torch::Tensor& rgb, const torch::Tensor& saturation,
                            const torch::Tensor& dh6) {
  const auto r = rgb.select(1, 0), g = rgb.select(1, 1), b = rgb.select(1, 2);
  const auto vmax = torch::max(r, torch::max(g, b));
  const auto vmin = torch::min(r, torch::min(g, b));
  const auto range = vmax - vmin;
  const auto zero = torch::zeros_like(range);
  const auto inv = torch::where(range > 0, 1.0 / range.clamp_min(1e-30), zero);
  const auto hr = (g - b) * inv;
  const auto hg = (b - r) * inv + 2.0;
  const auto hb = (r - g) * inv + 4.0;
  auto h = torch::where(vmax == r, hr, torch::where(vmax == g, hg, hb));
  h = torch::where(h < 0, h + 6.0, h);
  const auto s = torch::where(vmax > 0, range / vmax.clamp_min(1e-30), zero);
  const auto chroma = torch::where(vmax > 0, Clamp01(s * saturation) * vmax, zero);
  h = h + dh6;
  h = torch::where(h < 0, h + 6.0, h);
  h = torch::where(h >= 6.0, h - 6.0, h);
  auto channel = [&](double n) {
    auto k = h + n;
    k = torch::where(k >= 6.0, k - 6.0, k);
    return vmax - chroma * Clamp01(torch::min(k, 4.0 - k));
  };
  return torch::stack({channel(5.0), channel(3.0), channel(1.0)}, 1);
}

// One colour ordering (ColorDistortion::ordering) on the images `rows` of
// the batch.
torch::Tensor Distort(const torch::Tensor& x, const std::vector<PreprocessPlan>& plans,
                      const std::vector<int64_t>& rows, int ordering) {
  std::vector<float> bright, saturation, dh6, contrast;
  for (int64_t i : rows) {
    const ColorDistortion& c = plans[static_cast<size_t>(i)].distortion.color;
    bright.push_back(c.brightness_delta);
    saturation.push_back(c.saturation_factor);
    dh6.push_back(c.hue_delta * 6.0f);
    contrast.push_back(c.contrast_factor);
  }
  const auto n = static_cast<int64_t>(rows.size());
  auto param = [&](const std::vector<float>& v, int dims) {
    std::vector<int64_t> shape{n};
    for (int d = 0; d < dims; ++d) shape.push_back(1);
    return torch::tensor(v).view(shape).to(x.device());
  };
  const auto b4 = param(bright, 3), k4 = param(contrast, 3);
  const auto s3 = param(saturation, 2), h3 = param(dh6, 2);
  if (ordering == 0) {
    // brightness, saturation, hue; then contrast with the means after hue.
    const auto y = SaturationHue(x + b4, s3, h3);
    const auto m = y.mean({2, 3}, /*keepdim=*/true);
    return Finish(y * k4 + (m - m * k4));
  }
  // brightness, contrast, saturation, hue.
  const auto m = x.mean({2, 3}, /*keepdim=*/true) + b4;
  return Finish(SaturationHue((x + b4 - m) * k4 + m, s3, h3));
}

}  // namespace

torch::Tensor DistortColorsOnDevice(const torch::Tensor& batch,
                                    const std::vector<PreprocessPlan>& plans) {
  std::vector<int64_t> groups[3];  // ordering 0, ordering 1, scale only
  for (size_t i = 0; i < plans.size(); ++i) {
    const int g = plans[i].distort_color ? (plans[i].distortion.color.ordering % 2) : 2;
    groups[g].push_back(static_cast<int64_t>(i));
  }
  if (groups[2].size() == plans.size()) return Finish(batch);
  auto out = torch::empty_like(batch);
  for (int g = 0; g < 3; ++g) {
    if (groups[g].empty()) continue;
    const auto index = torch::tensor(groups[g]).to(batch.device());
    const auto part = batch.index_select(0, index);
    out.index_copy_(0, index, g == 2 ? Finish(part) : Distort(part, plans, groups[g], g));
  }
  return out;
}

torch::Tensor PreprocessDecoded(const std::vector<torch::Tensor>& images,
                                const std::vector<PreprocessPlan>& plans, int image_size) {
  if (images.size() != plans.size() || images.empty()) {
    throw TrainerError(TrainerError::Kind::kInternal,
                       "PreprocessDecoded: " + std::to_string(images.size()) + " images for " +
                           std::to_string(plans.size()) + " plans");
  }
  const int s = image_size;
  // Every image's two weight matrices, in one host buffer and one copy.
  struct Axes {
    ResampleMatrix rows, cols;
  };
  std::vector<Axes> axes;
  axes.reserve(plans.size());
  std::vector<float> weights;
  for (size_t i = 0; i < plans.size(); ++i) {
    const PreprocessPlan& p = plans[i];
    const auto& image = images[i];
    if (image.dim() != 3 || image.size(0) != 3 || image.size(1) != p.height ||
        image.size(2) != p.width) {
      throw TrainerError(TrainerError::Kind::kInternal,
                         "PreprocessDecoded: image " + std::to_string(i) +
                             " does not have its header's size " + std::to_string(p.width) + "x" +
                             std::to_string(p.height));
    }
    const TrainDistortion& d = p.distortion;
    Axes a{
        BuildResampleMatrix(d.method, static_cast<float>(d.crop.y),
                            static_cast<float>(d.crop.height), p.height, s, false, 1.0f / 255.0f),
        BuildResampleMatrix(d.method, static_cast<float>(d.crop.x),
                            static_cast<float>(d.crop.width), p.width, s, d.flip, 1.0f)};
    weights.insert(weights.end(), a.rows.weights.begin(), a.rows.weights.end());
    weights.insert(weights.end(), a.cols.weights.begin(), a.cols.weights.end());
    axes.push_back(std::move(a));
  }
  const torch::Device device = images[0].device();
  const auto all =
      torch::from_blob(weights.data(), {static_cast<int64_t>(weights.size())}, torch::kFloat32)
          .to(device);
  std::vector<torch::Tensor> resized;
  resized.reserve(images.size());
  int64_t offset = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const Axes& a = axes[i];
    const auto y = all.narrow(0, offset, s * a.rows.count).view({s, a.rows.count});
    offset += s * a.rows.count;
    const auto x = all.narrow(0, offset, s * a.cols.count).view({s, a.cols.count});
    offset += s * a.cols.count;
    const auto region = images[i]
                            .narrow(1, a.rows.first, a.rows.count)
                            .narrow(2, a.cols.first, a.cols.count)
                            .to(torch::kFloat32);
    // [s, rows] x [3, rows, cols] x [cols, s] -> [3, s, s]
    resized.push_back(torch::matmul(torch::matmul(y, region), x.t()));
  }
  return DistortColorsOnDevice(torch::stack(resized), plans);
}

}  // namespace retrain::trainer
