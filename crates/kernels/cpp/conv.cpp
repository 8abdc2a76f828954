// Direct NHWC convolutions: depthwise (any odd k, stride, channel multiplier) and a dense conv
// for few input channels. Channels are innermost, so every tap is a contiguous
// multiply-add over channels (vectorized); output rows are split over threads.
#include <algorithm>
#include <vector>

#include "kernels.h"
#include "math.h"
#include "pool.h"

namespace mck {
namespace {

// Output rows per chunk so that a chunk is ~64K multiply-adds or more.
size_t grain_out_rows(size_t wo, size_t cout, size_t taps) {
  return std::max<size_t>(1, 65536 / std::max<size_t>(wo * cout * taps, 1));
}

MCK_CLONES
void depthwise_rows(const float* x, const float* wt, const float* bias, float* out, size_t h, size_t w, size_t cin,
                    size_t m, size_t k, size_t stride, size_t ho, size_t wo, int act, size_t q0, size_t q1) {
  const size_t cout = cin * m;
  const long p = static_cast<long>(k / 2);
  const GeluCoeffs g = kGeluCoeffs;
  std::vector<float> accv(cout);
  float* acc = accv.data();
  for (size_t q = q0; q < q1; ++q) {  // q = image * ho + output row
    const size_t img = q / ho, oy = q % ho;
    const float* xi = x + img * h * w * cin;
    float* orow = out + q * wo * cout;
    for (size_t ox = 0; ox < wo; ++ox) {
      if (bias)
        for (size_t o = 0; o < cout; ++o) acc[o] = bias[o];
      else
        for (size_t o = 0; o < cout; ++o) acc[o] = 0.0f;
      for (size_t dy = 0; dy < k; ++dy) {
        long iy = static_cast<long>(oy * stride + dy) - p;
        if (iy < 0 || iy >= static_cast<long>(h)) continue;
        for (size_t dx = 0; dx < k; ++dx) {
          long ix = static_cast<long>(ox * stride + dx) - p;
          if (ix < 0 || ix >= static_cast<long>(w)) continue;
          const float* xp = xi + (static_cast<size_t>(iy) * w + static_cast<size_t>(ix)) * cin;
          const float* wp = wt + (dy * k + dx) * cout;
          if (m == 1) {
            for (size_t c = 0; c < cin; ++c) acc[c] += xp[c] * wp[c];
          } else if (m == 2) {
            for (size_t c = 0; c < cin; ++c) {
              acc[2 * c] += xp[c] * wp[2 * c];
              acc[2 * c + 1] += xp[c] * wp[2 * c + 1];
            }
          } else {
            for (size_t c = 0; c < cin; ++c)
              for (size_t j = 0; j < m; ++j) acc[c * m + j] += xp[c] * wp[c * m + j];
          }
        }
      }
      float* o = orow + ox * cout;
      if (act == kGelu)
        for (size_t c = 0; c < cout; ++c) o[c] = gelu1(acc[c], g);
      else
        for (size_t c = 0; c < cout; ++c) o[c] = acc[c];
    }
  }
}

MCK_CLONES
void conv_small_rows(const float* x, const float* wt, const float* bias, float* out, size_t h, size_t w, size_t cin,
                     size_t cout, size_t k, size_t stride, size_t ho, size_t wo, int act, size_t q0, size_t q1) {
  const long p = static_cast<long>(k / 2);
  const GeluCoeffs g = kGeluCoeffs;
  std::vector<float> accv(cout);
  float* acc = accv.data();
  for (size_t q = q0; q < q1; ++q) {
    const size_t img = q / ho, oy = q % ho;
    const float* xi = x + img * h * w * cin;
    float* orow = out + q * wo * cout;
    for (size_t ox = 0; ox < wo; ++ox) {
      if (bias)
        for (size_t o = 0; o < cout; ++o) acc[o] = bias[o];
      else
        for (size_t o = 0; o < cout; ++o) acc[o] = 0.0f;
      for (size_t dy = 0; dy < k; ++dy) {
        long iy = static_cast<long>(oy * stride + dy) - p;
        if (iy < 0 || iy >= static_cast<long>(h)) continue;
        for (size_t dx = 0; dx < k; ++dx) {
          long ix = static_cast<long>(ox * stride + dx) - p;
          if (ix < 0 || ix >= static_cast<long>(w)) continue;
          const float* xp = xi + (static_cast<size_t>(iy) * w + static_cast<size_t>(ix)) * cin;
          const float* wp = wt + (dy * k + dx) * cin * cout;
          for (size_t c = 0; c < cin; ++c) {
            const float xv = xp[c];
            const float* wc = wp + c * cout;
            for (size_t o = 0; o < cout; ++o) acc[o] += xv * wc[o];
          }
        }
      }
      float* o = orow + ox * cout;
      if (act == kGelu)
        for (size_t c = 0; c < cout; ++c) o[c] = gelu1(acc[c], g);
      else
        for (size_t c = 0; c < cout; ++c) o[c] = acc[c];
    }
  }
}

}  // namespace

void depthwise(const float* x, const float* wt, const float* bias, float* out, size_t n, size_t h, size_t w, size_t cin,
               size_t m, size_t k, size_t stride, size_t ho, size_t wo, int act) {
  parallel_for(n * ho, grain_out_rows(wo, cin * m, k * k), [&](size_t a, size_t b) {
    depthwise_rows(x, wt, bias, out, h, w, cin, m, k, stride, ho, wo, act, a, b);
  });
}

void conv_small(const float* x, const float* wt, const float* bias, float* out, size_t n, size_t h, size_t w, size_t cin,
                size_t cout, size_t k, size_t stride, size_t ho, size_t wo, int act) {
  parallel_for(n * ho, grain_out_rows(wo, cout, k * k * cin), [&](size_t a, size_t b) {
    conv_small_rows(x, wt, bias, out, h, w, cin, cout, k, stride, ho, wo, act, a, b);
  });
}

}  // namespace mck
