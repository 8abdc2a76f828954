// Depthwise k x k convolution, stride S, channel multiplier M, zero padding k / 2, NHWC:
// FastViT's RepMixer (3x3) and ConvMlp (7x7) convolutions (stride 1), its stem's and patch
// embeddings' downsampling ones (3x3 stride 2; 7x7 stride 2 with multiplier 2) and the final
// 3x3 with multiplier 2. Included by tiles.cpp once per instruction set, after gemm_impl.h
// (it uses V, W, loadv, storev, splat, gelu_v). No guard.
//
// Register tile: PX neighbouring output pixels of one output row x one vector of output
// channels. For each kernel row the k weight vectors are loaded once and every input pixel
// of the row's window ((PX - 1) S + k of them) once, and each input feeds the outputs it
// touches: (PX - 1) S + 2k loads for PX * k multiply-adds, instead of two loads per
// multiply-add one output at a time. A row is tiled PX pixels at a time, then PX / 2, ... 1.
// Output channel o reads input channel o / M: with M = 2 a vector of W outputs reads W / 2
// inputs, each twice (a plain loop over that pairing did not vectorize: 2-5x slower).

#define MCK_ALWAYS inline __attribute__((always_inline))

MCK_ALWAYS V dw_finish(V acc, int act, const GeluCoeffs& g) { return act == kGelu ? gelu_v(acc, g) : acc; }

// The input vector for output channels [c0, c0 + W): input channels c0 / M .., each M times.
template <int M>
MCK_ALWAYS V dw_input(const float* p) {
  if constexpr (M == 1) {
    return loadv(p);
  } else {
    float h[W / M];
    std::memcpy(h, p, sizeof h);
    return [&]<size_t... J>(std::index_sequence<J...>) { return V{h[J / M]...}; }(std::make_index_sequence<W>{});
  }
}

// PX outputs (oy, ox .. ox + PX - 1), output channels [c0, c0 + W). Input columns outside the
// map are skipped (zero padding): a compare per input column, not per tap.
template <int K, int S, int M, int PX>
MCK_ALWAYS void dw_tile(const DwArgs& q, const float* xi, float* orow, size_t oy, size_t ox, size_t c0,
                        const GeluCoeffs& g) {
  constexpr long P = K / 2;
  const size_t cout = q.c * M;
  V acc[PX];
  const V b0 = q.bias ? loadv(q.bias + c0) : V{};
#pragma GCC unroll 32
  for (int p = 0; p < PX; ++p) acc[p] = b0;
  const long ix0 = static_cast<long>(ox) * S - P, w = static_cast<long>(q.w);
  for (int dy = 0; dy < K; ++dy) {
    const long iy = static_cast<long>(oy) * S + dy - P;
    if (iy < 0 || iy >= static_cast<long>(q.h)) continue;
    const float* xr = xi + static_cast<size_t>(iy) * q.w * q.c + c0 / M;
    const float* wr = q.wt + static_cast<size_t>(dy) * K * cout + c0;
    V wv[K];
#pragma GCC unroll 16
    for (int dx = 0; dx < K; ++dx) wv[dx] = loadv(wr + dx * cout);
#pragma GCC unroll 64
    for (int t = 0; t < (PX - 1) * S + K; ++t) {
      const long ix = ix0 + t;
      if (ix < 0 || ix >= w) continue;
      const V xv = dw_input<M>(xr + static_cast<size_t>(ix) * q.c);
#pragma GCC unroll 32
      for (int p = 0; p < PX; ++p) {
        const int dx = t - p * S;
        if (dx >= 0 && dx < K) acc[p] += xv * wv[dx];
      }
    }
  }
#pragma GCC unroll 32
  for (int p = 0; p < PX; ++p) storev(orow + (ox + p) * cout + c0, dw_finish(acc[p], q.act, g));
}

// Outputs [ox, ox + n) of a row as tiles of PX, PX / 2, ..., 1. (With a tile width that is
// not a power of two, AVX2's 7 or 11 pixels, one tile of each width had left up to two
// pixels of a row unwritten.)
template <int K, int S, int M, int PX>
MCK_ALWAYS void dw_rest(const DwArgs& q, const float* xi, float* orow, size_t oy, size_t ox, size_t n, size_t cv,
                        const GeluCoeffs& g) {
  if constexpr (PX >= 1) {
    while (n >= static_cast<size_t>(PX)) {
      for (size_t c0 = 0; c0 < cv; c0 += W) dw_tile<K, S, M, PX>(q, xi, orow, oy, ox, c0, g);
      ox += PX;
      n -= PX;
    }
    dw_rest<K, S, M, PX / 2>(q, xi, orow, oy, ox, n, cv, g);
  }
}

// Output channels past the last whole vector, one at a time (any pixel).
template <int K, int S, int M>
void dw_channels(const DwArgs& q, const float* xi, float* orow, size_t oy, size_t c0, const GeluCoeffs& g) {
  constexpr long P = K / 2;
  const size_t cout = q.c * M;
  for (size_t ox = 0; ox < q.wo; ++ox)
    for (size_t ch = c0; ch < cout; ++ch) {
      float s = q.bias ? q.bias[ch] : 0.0f;
      for (int dy = 0; dy < K; ++dy) {
        const long iy = static_cast<long>(oy) * S + dy - P;
        if (iy < 0 || iy >= static_cast<long>(q.h)) continue;
        for (int dx = 0; dx < K; ++dx) {
          const long ix = static_cast<long>(ox) * S + dx - P;
          if (ix < 0 || ix >= static_cast<long>(q.w)) continue;
          s += xi[(static_cast<size_t>(iy) * q.w + static_cast<size_t>(ix)) * q.c + ch / M] *
               q.wt[(static_cast<size_t>(dy) * K + dx) * cout + ch];
        }
      }
      orow[ox * cout + ch] = q.act == kGelu ? gelu1(s, g) : s;
    }
}

// Output rows [q0, q1) (q = image * ho + oy).
template <int K, int S, int M>
__attribute__((noinline)) void dw_rows_k(const DwArgs& q, size_t q0, size_t q1) {
  // Pixels per tile: the accumulators, the k weights and one input fit the vector registers.
  constexpr int REGS = W == 16 ? 32 : 16;
  constexpr int PX0 = REGS - K - 2;
  constexpr int PX = PX0 > 16 ? 16 : (PX0 < 1 ? 1 : PX0);
  const GeluCoeffs g = kGeluCoeffs;
  const size_t cout = q.c * M;
  const size_t cv = cout / W * W;  // output channels in whole vectors
  for (size_t r = q0; r < q1; ++r) {
    const size_t img = r / q.ho, oy = r % q.ho;
    const float* xi = q.x + img * q.h * q.w * q.c;
    float* orow = q.out + r * q.wo * cout;
    size_t ox = 0;
    for (; ox + PX <= q.wo; ox += PX)
      for (size_t c0 = 0; c0 < cv; c0 += W) dw_tile<K, S, M, PX>(q, xi, orow, oy, ox, c0, g);
    dw_rest<K, S, M, PX / 2>(q, xi, orow, oy, ox, q.wo - ox, cv, g);
    if (cv < cout) dw_channels<K, S, M>(q, xi, orow, oy, cv, g);
  }
}

// Rows [q0, q1) with the body for (K, S, M) if that is the call's shape.
template <int K, int S, int M>
bool dw_rows_if(const DwArgs& q, size_t k, size_t q0, size_t q1) {
  if (k != K || q.stride != S || q.m != M) return false;
  dw_rows_k<K, S, M>(q, q0, q1);
  return true;
}

// The shapes with a register-tiled body (FastViT's: k x k, stride, multiplier); false: the
// caller's generic loop.
bool dw_rows(const DwArgs& q, size_t k, size_t q0, size_t q1) {
  return dw_rows_if<3, 1, 1>(q, k, q0, q1) || dw_rows_if<5, 1, 1>(q, k, q0, q1) || dw_rows_if<7, 1, 1>(q, k, q0, q1) ||
         dw_rows_if<3, 2, 1>(q, k, q0, q1) || dw_rows_if<7, 2, 1>(q, k, q0, q1) || dw_rows_if<3, 1, 2>(q, k, q0, q1) ||
         dw_rows_if<3, 2, 2>(q, k, q0, q1) || dw_rows_if<7, 2, 2>(q, k, q0, q1);
}

#undef MCK_ALWAYS
