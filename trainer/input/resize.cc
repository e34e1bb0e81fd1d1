#include "trainer/input/resize.h"

#include <algorithm>
#include <cmath>

#include "trainer/input/vector_clones.h"

namespace retrain::trainer {
namespace {

// Keys' cubic convolution kernel with a = -0.5 (TF2's bicubic).
float Cubic(float x) {
  constexpr float a = -0.5f;
  x = std::fabs(x);
  if (x <= 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
  if (x < 2.0f) return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
  return 0.0f;
}

int TapsPerOutput(ResizeMethod method, float scale) {
  switch (method) {
    case ResizeMethod::kNearest:
      return 1;
    case ResizeMethod::kBilinear:
      return 2;
    case ResizeMethod::kBicubic:
      return 4;
    case ResizeMethod::kArea:
      return static_cast<int>(std::ceil(scale)) + 1;
  }
  return 1;
}

// Per output coordinate o (stored at `flip ? out_size - 1 - o : o`): `taps`
// source indices in [lo, hi] and their weights (times `gain`).
int BuildTaps(ResizeMethod method, float start, float size, int out_size, int lo, int hi, bool flip,
              float gain, std::vector<int>* index, std::vector<float>* weight) {
  const float scale = size / static_cast<float>(out_size);
  const int taps = TapsPerOutput(method, scale);
  index->assign(static_cast<size_t>(out_size) * taps, lo);
  weight->assign(static_cast<size_t>(out_size) * taps, 0.0f);
  for (int o = 0; o < out_size; ++o) {
    const int slot = flip ? out_size - 1 - o : o;
    int* idx = index->data() + static_cast<size_t>(slot) * taps;
    float* w = weight->data() + static_cast<size_t>(slot) * taps;
    switch (method) {
      case ResizeMethod::kNearest: {
        const int i = static_cast<int>(std::floor(start + (o + 0.5f) * scale));
        idx[0] = std::clamp(i, lo, hi);
        w[0] = gain;
        break;
      }
      case ResizeMethod::kBilinear: {
        const float in = start + (o + 0.5f) * scale - 0.5f;
        const float f = std::floor(in);
        const float t = in - f;
        const int i = static_cast<int>(f);
        idx[0] = std::clamp(i, lo, hi);
        idx[1] = std::clamp(i + 1, lo, hi);
        w[0] = (1.0f - t) * gain;
        w[1] = t * gain;
        break;
      }
      case ResizeMethod::kBicubic: {
        // Taps outside the region get weight 0 and the rest are
        // renormalised (TF2's ResizeBicubic with half-pixel centres).
        const float in = start + (o + 0.5f) * scale - 0.5f;
        const float f = std::floor(in);
        const float t = in - f;
        const int i = static_cast<int>(f);
        float sum = 0.0f;
        for (int k = 0; k < 4; ++k) {
          const int j = i - 1 + k;
          if (j < lo || j > hi) continue;
          idx[k] = j;
          w[k] = Cubic(t - static_cast<float>(k - 1));
          sum += w[k];
        }
        if (std::fabs(sum) < 1e-6f) {  // cannot happen for a non-empty region
          idx[0] = std::clamp(i, lo, hi);
          w[0] = 1.0f;
          sum = 1.0f;
        }
        for (int k = 0; k < 4; ++k) w[k] *= gain / sum;
        break;
      }
      case ResizeMethod::kArea: {
        // resize_area: the box [a, b) averaged, edge pixels weighted by the
        // fraction they cover; indices outside the region clamp to its edge.
        const float a = start + o * scale;
        const float b = start + (o + 1) * scale;
        int k = 0;
        for (int i = static_cast<int>(std::floor(a)); i < b && k < taps; ++i) {
          const float cover =
              std::min(static_cast<float>(i + 1), b) - std::max(static_cast<float>(i), a);
          if (cover <= 0.0f) continue;
          idx[k] = std::clamp(i, lo, hi);
          w[k] = cover / scale * gain;
          ++k;
        }
        break;
      }
    }
  }
  return taps;
}

// The whole pixels [lo, hi] of the region [start, start + size) of an axis
// of src_size pixels: samples clamp to these.
void RegionPixels(float start, float size, int src_size, int* lo, int* hi) {
  *lo = std::clamp(static_cast<int>(std::floor(start)), 0, src_size - 1);
  *hi = std::clamp(static_cast<int>(std::ceil(start + size)) - 1, *lo, src_size - 1);
}

}  // namespace

ResampleMatrix BuildResampleMatrix(ResizeMethod method, float start, float size, int src_size,
                                   int out_size, bool flip, float gain) {
  int lo = 0, hi = 0;
  RegionPixels(start, size, src_size, &lo, &hi);
  std::vector<int> index;
  std::vector<float> weight;
  const int taps = BuildTaps(method, start, size, out_size, lo, hi, flip, gain, &index, &weight);
  ResampleMatrix m;
  m.first = lo;
  m.count = hi - lo + 1;
  m.weights.assign(static_cast<size_t>(out_size) * m.count, 0.0f);
  for (size_t t = 0; t < index.size(); ++t) {
    const size_t row = t / static_cast<size_t>(taps);
    m.weights[row * m.count + static_cast<size_t>(index[t] - lo)] += weight[t];
  }
  return m;
}

const char* ResizeMethodName(ResizeMethod method) {
  switch (method) {
    case ResizeMethod::kBilinear:
      return "bilinear";
    case ResizeMethod::kNearest:
      return "nearest";
    case ResizeMethod::kBicubic:
      return "bicubic";
    case ResizeMethod::kArea:
      return "area";
  }
  return "?";
}

RETRAIN_VECTOR_CLONES void Resize(const uint8_t* src, int src_width, int src_height, int stride,
                                  const RegionF& roi, int out_width, int out_height,
                                  ResizeMethod method, bool flip, float* out,
                                  ResizeScratch* scratch) {
  int x_lo = 0, x_hi = 0, y_lo = 0, y_hi = 0;
  RegionPixels(roi.x, roi.width, src_width, &x_lo, &x_hi);
  RegionPixels(roi.y, roi.height, src_height, &y_lo, &y_hi);

  const int xt = BuildTaps(method, roi.x, roi.width, out_width, x_lo, x_hi, flip, 1.0f,
                           &scratch->x_first, &scratch->x_weights);
  const int yt = BuildTaps(method, roi.y, roi.height, out_height, y_lo, y_hi, false, 1.0f / 255.0f,
                           &scratch->y_first, &scratch->y_weights);
  const int* xi = scratch->x_first.data();
  const float* xw = scratch->x_weights.data();
  const int* yi = scratch->y_first.data();
  const float* yw = scratch->y_weights.data();

  // Source rows the vertical taps name (unused taps name y_lo, a row that
  // every method but bilinear and nearest needs anyway).
  int row_lo = y_hi, row_hi = y_lo;
  for (size_t k = 0; k < scratch->y_first.size(); ++k) {
    row_lo = std::min(row_lo, yi[k]);
    row_hi = std::max(row_hi, yi[k]);
  }
  const int num_rows = row_hi - row_lo + 1;
  // Horizontally resampled rows, planar: row r holds its R, G and B planes.
  const size_t ow = static_cast<size_t>(out_width);
  scratch->rows.resize(static_cast<size_t>(num_rows) * 3 * ow);

  // Horizontal pass: each source row the vertical taps use, to out_width.
  for (int r = 0; r < num_rows; ++r) {
    const uint8_t* s = src + static_cast<size_t>(row_lo + r) * stride;
    float* dr = scratch->rows.data() + static_cast<size_t>(r) * 3 * ow;
    float* dg = dr + ow;
    float* db = dg + ow;
    if (xt == 1) {
      for (int o = 0; o < out_width; ++o) {
        const uint8_t* p = s + 3 * xi[o];
        dr[o] = p[0];
        dg[o] = p[1];
        db[o] = p[2];
      }
    } else if (xt == 2) {
      for (int o = 0; o < out_width; ++o) {
        const uint8_t* p0 = s + 3 * xi[2 * o];
        const uint8_t* p1 = s + 3 * xi[2 * o + 1];
        const float w0 = xw[2 * o], w1 = xw[2 * o + 1];
        dr[o] = w0 * p0[0] + w1 * p1[0];
        dg[o] = w0 * p0[1] + w1 * p1[1];
        db[o] = w0 * p0[2] + w1 * p1[2];
      }
    } else {
      for (int o = 0; o < out_width; ++o) {
        float a0 = 0, a1 = 0, a2 = 0;
        for (int k = 0; k < xt; ++k) {
          const uint8_t* p = s + 3 * xi[o * xt + k];
          const float w = xw[o * xt + k];
          a0 += w * p[0];
          a1 += w * p[1];
          a2 += w * p[2];
        }
        dr[o] = a0;
        dg[o] = a1;
        db[o] = a2;
      }
    }
  }

  // Vertical pass, plane by plane, into the planar output; the 1/255 is in
  // the vertical weights.
  const size_t plane = ow * static_cast<size_t>(out_height);
  for (int o = 0; o < out_height; ++o) {
    for (int c = 0; c < 3; ++c) {
      float* __restrict d = out + c * plane + static_cast<size_t>(o) * ow;
      const float* r0 =
          scratch->rows.data() + (static_cast<size_t>(yi[o * yt] - row_lo) * 3 + c) * ow;
      const float w0 = yw[o * yt];
      for (size_t i = 0; i < ow; ++i) d[i] = w0 * r0[i];
      for (int k = 1; k < yt; ++k) {
        const float w = yw[o * yt + k];
        if (w == 0.0f) continue;
        const float* __restrict rk =
            scratch->rows.data() + (static_cast<size_t>(yi[o * yt + k] - row_lo) * 3 + c) * ow;
        for (size_t i = 0; i < ow; ++i) d[i] += w * rk[i];
      }
    }
  }
}

}  // namespace retrain::trainer
