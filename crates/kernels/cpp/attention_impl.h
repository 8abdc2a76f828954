// Attention's per-head steps around its two GEMMs (tiles.cpp: attention), in explicit vectors
// of the including instruction set (tiles.cpp includes it after gemm_impl.h, whose V, W,
// loadv, storev, splat, clip_v and transpose_steps it uses). No include guard, as gemm_impl.h.
//
// Why vectors here: a head of the text towers is two small GEMMs (77 x 64 x 80, 77 x 77 x 64)
// that the register tile runs at ~180 GFLOP/s, but around them the scores' softmax (77 of 80
// columns: 13 exponentials per row in the scalar tail of a 16-lane loop) and the scalar
// transpose of k took 63% of a head's time (attention was 11% of S0's text tower at batch 16).

#define MCK_ALWAYS inline __attribute__((always_inline))

using VI = decltype(V{} < V{});  // lanes as ints: comparison masks and exponent bits

// exp for float32 lane by lane (Cephes expf): |rel err| < 2 ulp on [-87.3, 88]; 0 below, +inf
// above, NaN stays NaN. floor by truncation: the clipped argument keeps n within [-127, 128],
// where truncating toward zero and stepping down where that rounded up is floor.
MCK_ALWAYS V exp_v(V x) {
  const float hi = 88.0f, lo = -87.3365447504f;
  V xc = clip_v(x, lo, hi);  // NaN stays NaN and poisons y below
  V f = xc * 1.44269504088896341f + 0.5f;
  V t = __builtin_convertvector(__builtin_convertvector(f, VI), V);
  V n = t > f ? t - 1.0f : t;
  V r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  V y = (p * r) * r + r + 1.0f;
  VI e = (__builtin_convertvector(n, VI) + 127) << 23;
  V s;
  std::memcpy(&s, &e, sizeof s);
  y = y * s;
  y = x < lo ? V{} : y;
  y = x > hi ? splat(INFINITY) : y;
  return y;
}

// Lane 0 of the max / sum over the lanes, by halves (a chain of W scalar steps per row was a
// third of the softmax).
template <int D>
MCK_ALWAYS V rotate(V x) {
  return __builtin_shuffle(x, []<size_t... J>(std::index_sequence<J...>) {
    return VI{static_cast<int>((J + D) % W)...};
  }(std::make_index_sequence<W>{}));
}
template <int D = W / 2>
MCK_ALWAYS float hmax(V x) {  // (no lane is NaN here)
  if constexpr (D == 0) {
    return x[0];
  } else {
    V y = rotate<D>(x);
    return hmax<D / 2>(y > x ? y : x);
  }
}
template <int D = W / 2>
MCK_ALWAYS float hsum(V x) {
  if constexpr (D == 0)
    return x[0];
  else
    return hsum<D / 2>(x + rotate<D>(x));
}

MCK_ALWAYS VI lane_index() {
  return []<size_t... J>(std::index_sequence<J...>) { return VI{static_cast<int>(J)...}; }(std::make_index_sequence<W>{});
}

// x [n, k] (row stride ld) as the packed GEMM weight of its transpose: [k, np] in panels of
// kPanel columns (kernels.h), columns n .. np zero; np a multiple of W. (k^T for the scores.)
void pack_transposed(const float* x, size_t ld, size_t n, size_t k, size_t np, float* dst) {
  for (size_t j0 = 0; j0 < np; j0 += W) {
    float* col = dst + (j0 / kPanel) * k * kPanel + j0 % kPanel;
    size_t p = 0;
    for (; p + W <= k; p += W) {
      V t[W];
#pragma GCC unroll 16
      for (int r = 0; r < W; ++r) t[r] = j0 + r < n ? loadv(x + (j0 + r) * ld + p) : V{};
      transpose_steps<1>(t);
#pragma GCC unroll 16
      for (int c = 0; c < W; ++c) storev(col + (p + c) * kPanel, t[c]);
    }
    for (; p < k; ++p)
      for (int r = 0; r < W; ++r) col[p * kPanel + r] = j0 + r < n ? x[(j0 + r) * ld + p] : 0.0f;
  }
}

// x [n, k] (row stride ld) as a packed GEMM weight [n, k] (v for the weighted sum). Columns
// past k in the last panel are left as they are: the GEMM does not read them.
void pack_rows(const float* x, size_t ld, size_t n, size_t k, float* dst) {
  for (size_t j = 0; j < n; ++j) {
    const float* xr = x + j * ld;
    size_t c = 0;
    for (; c + W <= k; c += W) storev(dst + (c / kPanel) * n * kPanel + j * kPanel + c % kPanel, loadv(xr + c));
    for (; c < k; ++c) dst[(c / kPanel) * n * kPanel + j * kPanel + c % kPanel] = xr[c];
  }
}

// softmax(scale * x) in place over the rows of one [rows, c] matrix (kernels.h's contract:
// causal row r sees columns 0 ..= r + (c - rows), the rest become 0; a NaN in a row makes the
// row NaN, as MLX's softmax). Reads and writes whole vectors: the row stride ld must be at
// least c rounded up to W (the lanes past a row's columns are masked, then written as 0).
void softmax_rows(float* x, size_t ld, float scale, bool causal, size_t rows, size_t c) {
  const VI lane = lane_index();
  for (size_t r = 0; r < rows; ++r) {
    float* xr = x + r * ld;
    const size_t n = causal ? std::min(c, r + (c - std::min(c, rows)) + 1) : c;
    const int ni = static_cast<int>(n);
    // (the max skips NaNs; a NaN score then gives a NaN exponential, sum and row)
    V mx = splat(-INFINITY);
    for (size_t i = 0; i < n; i += W) {
      V v = loadv(xr + i) * scale;
      v = lane + static_cast<int>(i) < ni ? v : splat(-INFINITY);
      mx = v > mx ? v : mx;
    }
    const float m = hmax(mx);
    V acc{};
    for (size_t i = 0; i < n; i += W) {
      V e = exp_v(loadv(xr + i) * scale - m);
      e = lane + static_cast<int>(i) < ni ? e : V{};
      storev(xr + i, e);
      acc += e;
    }
    const float inv = 1.0f / hsum(acc);
    size_t i = 0;
    for (; i < n; i += W) {
      V y = loadv(xr + i) * inv;
      storev(xr + i, lane + static_cast<int>(i) < ni ? y : V{});
    }
    for (; i < c; ++i) xr[i] = 0.0f;
  }
}

#undef MCK_ALWAYS
