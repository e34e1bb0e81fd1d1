#include "trainer/input/color.h"

#include <algorithm>

#include "trainer/input/vector_clones.h"

// The loops below are branch-free over planes so that they vectorise (see
// CMakeLists.txt for the flags and vector_clones.h for AVX2).

namespace retrain::trainer {
namespace {

// adjust_saturation followed by adjust_hue on one pixel, giving what
// TensorFlow's CPU kernels give (adjust_saturation_op.cc, adjust_hue_op.cc)
// up to rounding: hue h in [0, 6) from the largest channel, saturation
// s = (max - min) / max (0 when max <= 0) scaled and clamped to [0, 1],
// value = max unchanged; back with the branch-free form of HSV -> RGB,
// channel = v - v * s * clamp(min(k, 4 - k), 0, 1), k = (n + h) mod 6 with
// n = 5, 3, 1 for r, g, b. `dh6` is the hue delta in sixths of a turn, in
// (-6, 6).
inline float Min(float a, float b) { return b < a ? b : a; }
inline float Max(float a, float b) { return a < b ? b : a; }
inline float Clamp01(float x) { return Min(Max(x, 0.0f), 1.0f); }

inline void SaturationHue(float& r, float& g, float& b, float saturation, float dh6) {
  const float vmax = Max(r, Max(g, b));
  const float vmin = Min(r, Min(g, b));
  const float range = vmax - vmin;
  // Divisions are done unconditionally (of a safe value) and selected after,
  // so that the loop has no branches and vectorises.
  const float inv_range = 1.0f / Max(range, 1e-30f);
  const float inv = range > 0.0f ? inv_range : 0.0f;
  const float hr = (g - b) * inv;
  const float hg = (b - r) * inv + 2.0f;
  const float hb = (r - g) * inv + 4.0f;
  float h = vmax == r ? hr : (vmax == g ? hg : hb);
  h = h < 0.0f ? h + 6.0f : h;
  const float s_raw = range / Max(vmax, 1e-30f);
  const float s = vmax > 0.0f ? s_raw : 0.0f;
  const float chroma = vmax > 0.0f ? Clamp01(s * saturation) * vmax : 0.0f;
  h += dh6;
  h = h < 0.0f ? h + 6.0f : h;
  h = h >= 6.0f ? h - 6.0f : h;
  float kr = h + 5.0f, kg = h + 3.0f, kb = h + 1.0f;
  kr = kr >= 6.0f ? kr - 6.0f : kr;
  kg = kg >= 6.0f ? kg - 6.0f : kg;
  kb = kb >= 6.0f ? kb - 6.0f : kb;
  r = vmax - chroma * Clamp01(Min(kr, 4.0f - kr));
  g = vmax - chroma * Clamp01(Min(kg, 4.0f - kg));
  b = vmax - chroma * Clamp01(Min(kb, 4.0f - kb));
}

inline float Finish(float x) { return (Clamp01(x) - 0.5f) * 2.0f; }

// Mean of a plane, accumulated in double (order fixed: deterministic).
float Mean(const float* p, int n) {
  double acc[4] = {0, 0, 0, 0};
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    acc[0] += p[i];
    acc[1] += p[i + 1];
    acc[2] += p[i + 2];
    acc[3] += p[i + 3];
  }
  for (; i < n; ++i) acc[0] += p[i];
  return n > 0 ? static_cast<float>((acc[0] + acc[1] + acc[2] + acc[3]) / n) : 0.0f;
}

}  // namespace

RETRAIN_VECTOR_CLONES void DistortColorInPlace(float* chw, int n, const ColorDistortion& c) {
  float* __restrict rp = chw;
  float* __restrict gp = chw + n;
  float* __restrict bp = chw + 2 * static_cast<size_t>(n);
  const float bright = c.brightness_delta;
  const float saturation = c.saturation_factor;
  const float dh6 = c.hue_delta * 6.0f;
  const float k = c.contrast_factor;
  if (c.ordering == 0) {
    // brightness, saturation, hue; then contrast, with the means after hue.
    for (int i = 0; i < n; ++i) {
      float r = rp[i] + bright, g = gp[i] + bright, b = bp[i] + bright;
      SaturationHue(r, g, b, saturation, dh6);
      rp[i] = r, gp[i] = g, bp[i] = b;
    }
    for (float* p : {rp, gp, bp}) {
      const float m = Mean(p, n);
      const float offset = m - m * k;  // (x - m) * k + m
      for (int i = 0; i < n; ++i) p[i] = Finish(p[i] * k + offset);
    }
  } else {
    // brightness, contrast (the means of the brightened image are the
    // means + delta), saturation, hue.
    const float mr = Mean(rp, n) + bright, mg = Mean(gp, n) + bright, mb = Mean(bp, n) + bright;
    for (int i = 0; i < n; ++i) {
      float r = (rp[i] + bright - mr) * k + mr;
      float g = (gp[i] + bright - mg) * k + mg;
      float b = (bp[i] + bright - mb) * k + mb;
      SaturationHue(r, g, b, saturation, dh6);
      rp[i] = Finish(r), gp[i] = Finish(g), bp[i] = Finish(b);
    }
  }
}

RETRAIN_VECTOR_CLONES void ScaleInPlace(float* chw, int n) {
  const size_t total = 3 * static_cast<size_t>(n);
  for (size_t i = 0; i < total; ++i) chw[i] = Finish(chw[i]);
}

}  // namespace retrain::trainer
