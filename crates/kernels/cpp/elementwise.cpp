// Row-wise kernels: the GEMM epilogue (scale, bias, GELU, residual), LayerNorm, softmax.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.h"
#include "math.h"
#include "pool.h"

namespace mck {

const GeluCoeffs kGeluCoeffs;

namespace {

// Rows per parallel chunk: at least ~32K elements, so a chunk outweighs a thread wake-up.
size_t grain_rows(size_t c) { return std::max<size_t>(1, 32768 / std::max<size_t>(c, 1)); }

MCK_CLONES
void epilogue_rows(const float* y, const float* scale, const float* bias, const float* residual, float* out,
                   size_t r0, size_t r1, size_t c, size_t rps, int act) {
  const GeluCoeffs g = kGeluCoeffs;
  for (size_t r = r0; r < r1; ++r) {
    const float* yr = y + r * c;
    float* o = out + r * c;
    const float* s = scale ? scale + (r / rps) * c : nullptr;
    const float* rr = residual ? residual + r * c : nullptr;
    // One branch per row, straight loops inside (each one vectorizes).
    if (s && bias) {
      for (size_t i = 0; i < c; ++i) o[i] = yr[i] * s[i] + bias[i];
    } else if (s) {
      for (size_t i = 0; i < c; ++i) o[i] = yr[i] * s[i];
    } else if (bias) {
      for (size_t i = 0; i < c; ++i) o[i] = yr[i] + bias[i];
    } else if (o != yr) {
      for (size_t i = 0; i < c; ++i) o[i] = yr[i];
    }
    if (act == kGelu)
      for (size_t i = 0; i < c; ++i) o[i] = gelu1(o[i], g);
    if (rr)
      for (size_t i = 0; i < c; ++i) o[i] = rr[i] + o[i];
  }
}

MCK_CLONES
void layer_norm_rows(const float* x, const float* w, const float* b, float eps, float* out, size_t r0, size_t r1,
                     size_t c) {
  const float inv_c = 1.0f / static_cast<float>(c);
  for (size_t r = r0; r < r1; ++r) {
    const float* xr = x + r * c;
    float* o = out + r * c;
    // 16 partial sums: a vectorizable reduction with a fixed order (deterministic).
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= c; i += 16)
      for (int l = 0; l < 16; ++l) acc[l] += xr[i + l];
    for (; i < c; ++i) acc[i % 16] += xr[i];
    float sum = 0;
    for (int l = 0; l < 16; ++l) sum += acc[l];
    const float mean = sum * inv_c;
    float acc2[16] = {0};
    i = 0;
    for (; i + 16 <= c; i += 16)
      for (int l = 0; l < 16; ++l) {
        float d = xr[i + l] - mean;
        acc2[l] += d * d;
      }
    for (; i < c; ++i) {
      float d = xr[i] - mean;
      acc2[i % 16] += d * d;
    }
    float ss = 0;
    for (int l = 0; l < 16; ++l) ss += acc2[l];
    const float rstd = 1.0f / std::sqrt(ss * inv_c + eps);
    for (size_t j = 0; j < c; ++j) o[j] = ((xr[j] - mean) * rstd) * w[j] + b[j];
  }
}

}  // namespace

void epilogue(const float* y, const float* scale, const float* bias, const float* residual, float* out, size_t rows,
              size_t c, size_t rows_per_sample, int act) {
  size_t rps = std::max<size_t>(rows_per_sample, 1);
  parallel_for(rows, grain_rows(c), [&](size_t a, size_t b) {
    epilogue_rows(y, scale, bias, residual, out, a, b, c, rps, act);
  });
}

void layer_norm(const float* x, const float* w, const float* b, float eps, float* out, size_t rows, size_t c) {
  parallel_for(rows, grain_rows(c), [&](size_t a, size_t e) { layer_norm_rows(x, w, b, eps, out, a, e, c); });
}

// The clone the ifunc resolvers pick follows the CPU's x86-64 level (kernels.h).
const char* isa() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return "avx512";
  if (__builtin_cpu_supports("x86-64-v3")) return "avx2";
  return "baseline";
#else
  return "portable";
#endif
}

}  // namespace mck
