// Depthwise k x k convolution, stride 1, channel multiplier 1, zero padding k / 2, NHWC: the
// RepMixer (3x3) and ConvMlp (7x7) convolutions of FastViT. Included by tiles.cpp once per
// instruction set, after gemm_impl.h (it uses V, W, loadv, storev, splat, gelu_v). No guard.
//
// Register tile: PX neighbouring output pixels of one output row x one vector of channels.
// For each kernel row the k weight vectors are loaded once and every input pixel of the
// row's window (PX + k - 1 of them) once, and each input feeds the up to k outputs it
// touches: (PX + 2k - 1) loads for PX * k multiply-adds, instead of two loads per
// multiply-add one output at a time. A row is tiled PX pixels at a time, then PX / 2, ... 1.

#define MCK_ALWAYS inline __attribute__((always_inline))

MCK_ALWAYS V dw_finish(V acc, int act, const GeluCoeffs& g) { return act == kGelu ? gelu_v(acc, g) : acc; }

// PX outputs (oy, ox .. ox + PX - 1), channels [c0, c0 + W). Input columns outside the map
// are skipped (zero padding): a compare per input column, not per tap.
template <int K, int PX>
MCK_ALWAYS void dw_tile(const DwArgs& q, const float* xi, float* orow, size_t oy, size_t ox, size_t c0,
                        const GeluCoeffs& g) {
  constexpr long P = K / 2;
  V acc[PX];
  const V b0 = q.bias ? loadv(q.bias + c0) : V{};
#pragma GCC unroll 32
  for (int p = 0; p < PX; ++p) acc[p] = b0;
  const long ix0 = static_cast<long>(ox) - P, w = static_cast<long>(q.w);
  for (int dy = 0; dy < K; ++dy) {
    const long iy = static_cast<long>(oy) + dy - P;
    if (iy < 0 || iy >= static_cast<long>(q.h)) continue;
    const float* xr = xi + static_cast<size_t>(iy) * q.w * q.c + c0;
    const float* wr = q.wt + static_cast<size_t>(dy) * K * q.c + c0;
    V wv[K];
#pragma GCC unroll 16
    for (int dx = 0; dx < K; ++dx) wv[dx] = loadv(wr + dx * q.c);
#pragma GCC unroll 64
    for (int t = 0; t < PX + K - 1; ++t) {
      const long ix = ix0 + t;
      if (ix < 0 || ix >= w) continue;
      const V xv = loadv(xr + static_cast<size_t>(ix) * q.c);
#pragma GCC unroll 32
      for (int p = 0; p < PX; ++p) {
        const int dx = t - p;
        if (dx >= 0 && dx < K) acc[p] += xv * wv[dx];
      }
    }
  }
#pragma GCC unroll 32
  for (int p = 0; p < PX; ++p) storev(orow + (ox + p) * q.c + c0, dw_finish(acc[p], q.act, g));
}

// Outputs [ox, ox + n) of a row, n < 2 * PX, as tiles of PX, PX / 2, ..., 1.
template <int K, int PX>
MCK_ALWAYS void dw_rest(const DwArgs& q, const float* xi, float* orow, size_t oy, size_t ox, size_t n, size_t cv,
                        const GeluCoeffs& g) {
  if constexpr (PX >= 1) {
    if (n >= static_cast<size_t>(PX)) {
      for (size_t c0 = 0; c0 < cv; c0 += W) dw_tile<K, PX>(q, xi, orow, oy, ox, c0, g);
      ox += PX;
      n -= PX;
    }
    dw_rest<K, PX / 2>(q, xi, orow, oy, ox, n, cv, g);
  }
}

// Channels past the last whole vector, one at a time (any pixel).
template <int K>
void dw_channels(const DwArgs& q, const float* xi, float* orow, size_t oy, size_t c0, const GeluCoeffs& g) {
  constexpr long P = K / 2;
  for (size_t ox = 0; ox < q.w; ++ox)
    for (size_t ch = c0; ch < q.c; ++ch) {
      float s = q.bias ? q.bias[ch] : 0.0f;
      for (int dy = 0; dy < K; ++dy) {
        const long iy = static_cast<long>(oy) + dy - P;
        if (iy < 0 || iy >= static_cast<long>(q.h)) continue;
        for (int dx = 0; dx < K; ++dx) {
          const long ix = static_cast<long>(ox) + dx - P;
          if (ix < 0 || ix >= static_cast<long>(q.w)) continue;
          s += xi[(static_cast<size_t>(iy) * q.w + static_cast<size_t>(ix)) * q.c + ch] *
               q.wt[(static_cast<size_t>(dy) * K + dx) * q.c + ch];
        }
      }
      orow[ox * q.c + ch] = q.act == kGelu ? gelu1(s, g) : s;
    }
}

// Output rows [q0, q1) (q = image * h + oy).
template <int K>
__attribute__((noinline)) void dw_rows_k(const DwArgs& q, size_t q0, size_t q1) {
  // Pixels per tile: the accumulators, the k weights and one input fit the vector registers.
  constexpr int REGS = W == 16 ? 32 : 16;
  constexpr int PX0 = REGS - K - 2;
  constexpr int PX = PX0 > 16 ? 16 : (PX0 < 1 ? 1 : PX0);
  const GeluCoeffs g = kGeluCoeffs;
  const size_t cv = q.c / W * W;  // channels in whole vectors
  for (size_t r = q0; r < q1; ++r) {
    const size_t img = r / q.h, oy = r % q.h;
    const float* xi = q.x + img * q.h * q.w * q.c;
    float* orow = q.out + r * q.w * q.c;
    size_t ox = 0;
    for (; ox + PX <= q.w; ox += PX)
      for (size_t c0 = 0; c0 < cv; c0 += W) dw_tile<K, PX>(q, xi, orow, oy, ox, c0, g);
    dw_rest<K, PX / 2>(q, xi, orow, oy, ox, q.w - ox, cv, g);
    if (cv < q.c) dw_channels<K>(q, xi, orow, oy, cv, g);
  }
}

// The kernel sizes with a register-tiled body (FastViT's); false: the caller's generic loop.
bool dw_rows(const DwArgs& q, size_t k, size_t q0, size_t q1) {
  switch (k) {
    case 3:
      dw_rows_k<3>(q, q0, q1);
      return true;
    case 5:
      dw_rows_k<5>(q, q0, q1);
      return true;
    case 7:
      dw_rows_k<7>(q, q0, q1);
      return true;
    default:
      return false;
  }
}

#undef MCK_ALWAYS
