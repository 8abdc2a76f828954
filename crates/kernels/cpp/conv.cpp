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

// Calls f(tap, pixel) for every tap (dy * k + dx) of output pixel (oy, ox) that lands inside
// the h x w input (zero padding k / 2: the others add nothing); pixel = iy * w + ix.
template <class F>
static inline void for_each_tap(size_t h, size_t w, size_t k, size_t stride, size_t oy, size_t ox, F&& f) {
  const long p = static_cast<long>(k / 2);
  for (size_t dy = 0; dy < k; ++dy) {
    long iy = static_cast<long>(oy * stride + dy) - p;
    if (iy < 0 || iy >= static_cast<long>(h)) continue;
    for (size_t dx = 0; dx < k; ++dx) {
      long ix = static_cast<long>(ox * stride + dx) - p;
      if (ix < 0 || ix >= static_cast<long>(w)) continue;
      f(dy * k + dx, static_cast<size_t>(iy) * w + static_cast<size_t>(ix));
    }
  }
}

static inline void init_acc(float* acc, const float* bias, size_t n) {
  for (size_t i = 0; i < n; ++i) acc[i] = bias ? bias[i] : 0.0f;
}

static inline void store_act(float* o, const float* acc, size_t n, int act, const GeluCoeffs& g) {
  if (act == kGelu)
    for (size_t i = 0; i < n; ++i) o[i] = gelu1(acc[i], g);
  else
    for (size_t i = 0; i < n; ++i) o[i] = acc[i];
}

// Channels per register block: the accumulators of one block stay in vector registers
// across all k*k taps (4 zmm with AVX-512), instead of a load and store per tap.
constexpr size_t kBlock = 64;

// acc[0..B) = bias + sum over taps of x * w for one output pixel and channels [c0, c0 + B),
// multiplier 1. B is a compile-time constant so the loops unroll into registers.
template <size_t B>
static inline void dw_block(const float* xi, const float* wt, const float* bias, float* o, size_t c0, size_t h,
                            size_t w, size_t cin, size_t k, size_t stride, size_t oy, size_t ox, int act,
                            const GeluCoeffs& g) {
  float acc[B];
  init_acc(acc, bias ? bias + c0 : nullptr, B);
  for_each_tap(h, w, k, stride, oy, ox, [&](size_t tap, size_t pix) {
    const float* xp = xi + pix * cin + c0;
    const float* wp = wt + tap * cin + c0;
    for (size_t i = 0; i < B; ++i) acc[i] += xp[i] * wp[i];
  });
  store_act(o + c0, acc, B, act, g);
}

MCK_CLONES
void depthwise_rows(const float* x, const float* wt, const float* bias, float* out, size_t h, size_t w, size_t cin,
                    size_t m, size_t k, size_t stride, size_t ho, size_t wo, int act, size_t q0, size_t q1) {
  const size_t cout = cin * m;
  const GeluCoeffs g = kGeluCoeffs;
  std::vector<float> accv(cout);
  float* acc = accv.data();
  for (size_t q = q0; q < q1; ++q) {  // q = image * ho + output row
    const size_t img = q / ho, oy = q % ho;
    const float* xi = x + img * h * w * cin;
    float* orow = out + q * wo * cout;
    for (size_t ox = 0; ox < wo; ++ox) {
      float* o = orow + ox * cout;
      if (m == 1) {
        size_t c0 = 0;
        for (; c0 + kBlock <= cin; c0 += kBlock) dw_block<kBlock>(xi, wt, bias, o, c0, h, w, cin, k, stride, oy, ox, act, g);
        for (; c0 + 16 <= cin; c0 += 16) dw_block<16>(xi, wt, bias, o, c0, h, w, cin, k, stride, oy, ox, act, g);
        for (; c0 < cin; ++c0) dw_block<1>(xi, wt, bias, o, c0, h, w, cin, k, stride, oy, ox, act, g);
        continue;
      }
      // channel multiplier > 1 (downsampling and final convs): accumulate in memory
      init_acc(acc, bias, cout);
      for_each_tap(h, w, k, stride, oy, ox, [&](size_t tap, size_t pix) {
        const float* xp = xi + pix * cin;
        const float* wp = wt + tap * cout;
        if (m == 2) {
          for (size_t c = 0; c < cin; ++c) {
            acc[2 * c] += xp[c] * wp[2 * c];
            acc[2 * c + 1] += xp[c] * wp[2 * c + 1];
          }
        } else {
          for (size_t c = 0; c < cin; ++c)
            for (size_t j = 0; j < m; ++j) acc[c * m + j] += xp[c] * wp[c * m + j];
        }
      });
      store_act(o, acc, cout, act, g);
    }
  }
}

// PX neighbouring output pixels x B output channels [o0, o0 + B) of a dense conv: the
// accumulators stay in registers over all k*k*cin taps (B = 32: two zmm per pixel), each
// weight vector loaded once for the PX pixels. Only the first np pixels are outputs (fewer
// than PX at a row's end; the others are computed from zeros and dropped).
template <size_t B, size_t PX>
static inline void conv_block(const float* xi, const float* wt, const float* bias, float* orow, size_t o0, size_t h,
                              size_t w, size_t cin, size_t cout, size_t k, size_t stride, size_t oy, size_t ox,
                              size_t np, int act, const GeluCoeffs& g) {
  float acc[PX][B];
  for (size_t p = 0; p < PX; ++p)
    for (size_t i = 0; i < B; ++i) acc[p][i] = bias ? bias[o0 + i] : 0.0f;
  const long pad = static_cast<long>(k / 2);
  for (size_t dy = 0; dy < k; ++dy) {
    const long iy = static_cast<long>(oy * stride + dy) - pad;
    if (iy < 0 || iy >= static_cast<long>(h)) continue;
    for (size_t dx = 0; dx < k; ++dx) {
      const float* wp = wt + (dy * k + dx) * cin * cout + o0;
      for (size_t c = 0; c < cin; ++c) {
        const float* wc = wp + c * cout;
        for (size_t p = 0; p < PX; ++p) {
          const long ix = static_cast<long>((ox + p) * stride + dx) - pad;
          // (outside the map: zero padding; past np: not an output)
          const float xv = p < np && ix >= 0 && ix < static_cast<long>(w)
                               ? xi[(static_cast<size_t>(iy) * w + static_cast<size_t>(ix)) * cin + c]
                               : 0.0f;
          for (size_t i = 0; i < B; ++i) acc[p][i] += xv * wc[i];
        }
      }
    }
  }
  for (size_t p = 0; p < np; ++p) store_act(orow + (ox + p) * cout + o0, acc[p], B, act, g);
}

MCK_CLONES
void conv_small_rows(const float* x, const float* wt, const float* bias, float* out, size_t h, size_t w, size_t cin,
                     size_t cout, size_t k, size_t stride, size_t ho, size_t wo, int act, size_t q0, size_t q1) {
  const GeluCoeffs g = kGeluCoeffs;
  constexpr size_t B = 32, PX = 4;
  std::vector<float> accv(cout);
  float* acc = accv.data();
  const size_t ob = cout / B * B, oh = cout / 16 * 16;  // channels in whole blocks of B, of 16
  for (size_t q = q0; q < q1; ++q) {
    const size_t img = q / ho, oy = q % ho;
    const float* xi = x + img * h * w * cin;
    float* orow = out + q * wo * cout;
    for (size_t ox = 0; ox < wo; ox += PX) {
      const size_t np = std::min(PX, wo - ox);
      for (size_t o0 = 0; o0 < ob; o0 += B)
        conv_block<B, PX>(xi, wt, bias, orow, o0, h, w, cin, cout, k, stride, oy, ox, np, act, g);
      if (oh > ob) conv_block<16, PX>(xi, wt, bias, orow, ob, h, w, cin, cout, k, stride, oy, ox, np, act, g);
      if (oh == cout) continue;
      // the last channels (cout not a multiple of 16), one pixel at a time
      for (size_t p = ox; p < ox + np; ++p) {
        for (size_t o = oh; o < cout; ++o) acc[o] = bias ? bias[o] : 0.0f;
        for_each_tap(h, w, k, stride, oy, p, [&](size_t tap, size_t pix) {
          const float* xp = xi + pix * cin;
          const float* wp = wt + tap * cin * cout;
          for (size_t c = 0; c < cin; ++c)
            for (size_t o = oh; o < cout; ++o) acc[o] += xp[c] * wp[c * cout + o];
        });
        store_act(orow + p * cout + oh, acc + oh, cout - oh, act, g);
      }
    }
  }
}

}  // namespace

void depthwise(const float* x, const float* wt, const float* bias, float* out, size_t n, size_t h, size_t w, size_t cin,
               size_t m, size_t k, size_t stride, size_t ho, size_t wo, int act) {
  if (depthwise_tiled(x, wt, bias, out, n, h, w, cin, m, k, stride, ho, wo, act)) return;
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
