// The body of the fused GEMMs (tiles.cpp includes it once per instruction set, inside a
// namespace that defines `V`, a GCC/Clang vector of floats, and `MR`, the rows of a register
// tile). No include guard: it is meant to be included several times.
//
// Layout (the MLAS / GotoBLAS register tile): a tile of MR rows x NV vectors of C stays in
// registers over a block of K; every step broadcasts one element of each of the MR rows of A
// (read in place) and multiplies it with NV vectors of one row of B. B comes packed by the
// loader (kernels.h, kPanel): panels of 32 columns, each K x 32 contiguous, so a panel's KC
// rows are one sequential 32 KB stretch (a row-major [K, N] with N a multiple of 256 maps all
// its rows to a few L1 sets and misses). Which of A and B stays in L1 depends on the block's
// height (rows(): tile-major or panel-major).
// Bias is the accumulator's start; GELU and the residual are applied to the registers before
// the only store, so C is written once and never read back (no memset, no epilogue pass).

#define MCK_ALWAYS inline __attribute__((always_inline))

constexpr int W = static_cast<int>(sizeof(V) / sizeof(float));
constexpr size_t KC = 256;  // K block: a panel's KC rows (32 KB) or a tile's A (12 KB) in L1
static_assert(kPanel % (2 * W) == 0, "a panel holds whole tiles");

MCK_ALWAYS V loadv(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
MCK_ALWAYS void storev(float* p, V v) { std::memcpy(p, &v, sizeof v); }
// Every lane x (not V{} + x: adding 0.0 is not an identity for -0.0, so it would stay a
// scalar add before each broadcast).
MCK_ALWAYS V splat(float x) {
  return [&]<size_t... I>(std::index_sequence<I...>) { return V{((void)I, x)...}; }(std::make_index_sequence<W>{});
}

// clip_nan and gelu1 of math.h, lane by lane: the same operations in the same order. (The
// division stays: a reciprocal estimate plus a Newton step measured slower here.)
MCK_ALWAYS V clip_v(V x, float lo, float hi) {
  V a = x < lo ? splat(lo) : x;
  return a > hi ? splat(hi) : a;
}
MCK_ALWAYS V gelu_v(V x, const GeluCoeffs& g) {
  V u = clip_v(x, -g.lim, g.lim);
  V z = u * u;
  V num = z * g.p[0] + g.p[1];
  num = num * z + g.p[2];
  num = num * z + g.p[3];
  num = num * z + g.p[4];
  num = num * z + g.p[5];
  num = num * z + g.p[6];
  V den = z + g.q[1];
  den = den * z + g.q[2];
  den = den * z + g.q[3];
  den = den * z + g.q[4];
  V phi = (u * num) / den + 0.5f;
  return x * phi;
}


// How far ahead (floats of the panel: 32 of its K rows) the first tile over a panel asks for
// B. That tile is the one reading the panel from memory (the others find it in L1, or in L2
// when the block runs tile-major): with few tiles per panel (FastViT's late stages at batch
// 1, 16-64 rows, whose weights stream from DRAM) the hardware prefetcher alone left half of
// the bandwidth unused (S3's 16-row MLP 5.4 -> 4.0 ms, 64 rows -10%, 256 rows -10%; large
// GEMMs unchanged).
constexpr size_t PREFETCH_AHEAD = 32 * kPanel;

// One MR' x NV-vector tile of C at (row i, column j) over K rows [k0, k0 + kc): starts from
// the bias (first block) or the partial sums in C; the last block applies act and residual.
// `a`: the tile's packed A (PK; see pack_a) or A itself at (row i, column k0). PF: prefetch
// B into L2 ahead (the panel is contiguous over all of K, so this runs into the panel's next
// K block, needed again when the tiles come back to it).
template <int R, int NV, bool PK, bool PF = false>
MCK_ALWAYS void tile(const GemmArgs& q, const float* a, size_t i, size_t j, size_t k0, size_t kc,
                     const GeluCoeffs& g) {
  const bool first = k0 == 0, last = k0 + kc == q.k;
  V acc[R][NV];
  float* c = q.c + i * q.ldc + j;
#pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) {
    V init = first ? (q.bias ? loadv(q.bias + j + v * W) : V{}) : V{};
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r][v] = first ? init : loadv(c + r * q.ldc + v * W);
  }
  const float* b = q.b + (j / kPanel) * q.k * kPanel + k0 * kPanel + j % kPanel;
  // (unrolled by 4: 2% on the large GEMMs)
#pragma GCC unroll 4
  for (size_t p = 0; p < kc; ++p) {
    V bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = loadv(b + p * kPanel + v * W);
    if constexpr (PF) {
      __builtin_prefetch(b + p * kPanel + PREFETCH_AHEAD, 0, 2);
      __builtin_prefetch(b + p * kPanel + PREFETCH_AHEAD + 16, 0, 2);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      V av = splat(PK ? a[p * MR + r] : a[r * q.lda + p]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      V y = acc[r][v];
      if (last) {
        if (q.act == kGelu) y = gelu_v(y, g);
        if (q.r) y += loadv(q.r + (i + r) * q.ldr + j + v * W);
      }
      storev(c + r * q.ldc + v * W, y);
    }
  }
}

// Tiles of fewer than MR rows (the end of a row block), R counting down to 1.
template <int R, int NV, bool PK>
MCK_ALWAYS void tail(int rows, const GemmArgs& q, const float* a, size_t i, size_t j, size_t k0, size_t kc,
                     const GeluCoeffs& g) {
  if constexpr (R > 0) {
    if (rows == R)
      tile<R, NV, PK>(q, a, i, j, k0, kc, g);
    else
      tail<R - 1, NV, PK>(rows, q, a, i, j, k0, kc, g);
  }
}

template <int NV, bool PK>
__attribute__((noinline)) void panel(const GemmArgs& q, const float* ap, size_t i0, size_t i1, size_t j, size_t k0,
                                     size_t kc, const GeluCoeffs& g) {
  size_t i = i0;
  const size_t step = PK ? MR * kc : MR * q.lda;
  const float* a = PK ? ap : q.a + i0 * q.lda + k0;
  if (i + MR <= i1) {
    tile<MR, NV, PK, true>(q, a, i, j, k0, kc, g);
    i += MR;
    a += step;
  }
  for (; i + MR <= i1; i += MR, a += step) tile<MR, NV, PK>(q, a, i, j, k0, kc, g);
  if (i < i1) tail<MR - 1, NV, PK>(static_cast<int>(i1 - i), q, a, i, j, k0, kc, g);
}

// Columns left over after the whole vectors (N not a multiple of W), one at a time.
void columns(const GemmArgs& q, size_t i0, size_t i1, size_t j0, size_t j1, size_t k0, size_t kc,
             const GeluCoeffs& g) {
  const bool first = k0 == 0, last = k0 + kc == q.k;
  for (size_t i = i0; i < i1; ++i)
    for (size_t j = j0; j < j1; ++j) {
      float* c = q.c + i * q.ldc + j;
      float s = first ? (q.bias ? q.bias[j] : 0.0f) : *c;
      const float* b = q.b + (j / kPanel) * q.k * kPanel + j % kPanel;
      for (size_t p = k0; p < k0 + kc; ++p) s += q.a[i * q.lda + p] * b[p * kPanel];
      if (last) {
        if (q.act == kGelu) s = gelu1(s, g);
        if (q.r) s += q.r[i * q.ldr + j];
      }
      *c = s;
    }
}

// A long K (>= PACK_A_FROM: the text and ViT GEMMs, FastViT's late stages) packs A: the row
// block's A, all of K, tile by tile and K block by K block, MR rows interleaved per k (element
// (r, p) of a tile at p * MR + r). A tile's broadcasts for one k are then one cache line, and
// rows whose stride is a multiple of 2-4 KB no longer compete for a few L1 sets. The packed
// block is made once and serves every column. Short K (FastViT's 64-384) reads A in place:
// there the copy costs more than it saves.
constexpr size_t PACK_A_FROM = 512;
// Columns per group of a packed-A or tile-major call: one K block of the group's B (256 x 512
// floats, 512 KB) stays in L2 while the row block's tiles work through it.
constexpr size_t GROUP = 16 * kPanel;

constexpr size_t padded_rows(size_t rows) { return (rows + MR - 1) / MR * MR; }

// Floats of packed A that rows() needs for `rows` rows of `k` (0 for a short K).
constexpr size_t pack_floats(size_t rows, size_t k) { return k >= PACK_A_FROM ? padded_rows(rows) * k : 0; }

// One step of a W x W transpose in registers: rows i and i + d (bit d of i clear) swap the
// elements whose row and column differ in bit d. After the steps for d = 1, 2, ..., W / 2,
// row j holds column j.
template <int D>
MCK_ALWAYS void transpose_step(V& lo, V& hi) {
  using M = decltype(lo < lo);
  constexpr M keep = []<size_t... J>(std::index_sequence<J...>) {
    return M{((J & D) ? static_cast<int>(W + J - D) : static_cast<int>(J))...};
  }(std::make_index_sequence<W>{});
  constexpr M take = []<size_t... J>(std::index_sequence<J...>) {
    return M{((J & D) ? static_cast<int>(W + J) : static_cast<int>(J + D))...};
  }(std::make_index_sequence<W>{});
  V a = __builtin_shuffle(lo, hi, keep), b = __builtin_shuffle(lo, hi, take);
  lo = a;
  hi = b;
}
template <int D>
MCK_ALWAYS void transpose_steps(V (&t)[W]) {
  if constexpr (D < W) {
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i)
      if (!(i & D)) transpose_step<D>(t[i], t[i + D]);
    transpose_steps<D * 2>(t);
  }
}

// Packs the row block's A (see PACK_A_FROM). A whole tile is transposed W columns at a time
// in registers (MR <= W rows, the rest zero): a scalar copy cost 6% of the text tower.
void pack_a(const GemmArgs& q, size_t i0, size_t i1, float* ap) {
  static_assert(MR <= W, "a tile's rows fit one vector");
  const size_t padded = padded_rows(i1 - i0);
  for (size_t k0 = 0; k0 < q.k; k0 += KC) {
    const size_t kc = q.k - k0 < KC ? q.k - k0 : KC;
    float* blk = ap + padded * k0;
    for (size_t i = i0; i < i1; i += MR, blk += MR * kc) {
      const size_t r1 = i1 - i < static_cast<size_t>(MR) ? i1 - i : MR;
      const float* a = q.a + i * q.lda + k0;
      size_t p = 0;
      if (r1 == static_cast<size_t>(MR)) {
        for (; p + W <= kc; p += W) {
          V t[W];
#pragma GCC unroll 16
          for (int r = 0; r < W; ++r) t[r] = r < MR ? loadv(a + r * q.lda + p) : V{};
          transpose_steps<1>(t);
#pragma GCC unroll 16
          for (int c = 0; c < W; ++c) std::memcpy(blk + (p + c) * MR, &t[c], MR * sizeof(float));
        }
      }
      for (; p < kc; ++p)
        for (size_t r = 0; r < r1; ++r) blk[p * MR + r] = a[r * q.lda + p];
    }
  }
}

// Row blocks of at least this many rows run tile-major (rows()): each tile of A stays in L1
// while it goes through the column group's panels, which stay in L2. Panel-major, the one
// ordering before, keeps a 32 KB panel of B in L1 (two thirds of it) while A streams through
// the rest, and lost ~10% of the tile's in-L1 speed on large blocks (1232 x 768 x 3072 on
// one thread: 163 -> 177 GFLOP/s; the text towers' GEMMs -3-5%). With few tiles per panel
// (a late FastViT stage at batch 1, 16-64 rows, its weights streaming from memory) panel-major
// stays: there each panel is read once for all tiles, tile-major would read it once per tile
// (S4's 16-row MLP +11%).
constexpr size_t TILE_MAJOR_FROM = 8 * MR;

// Tiles of rows [i0, i1) over the 2W-wide panels [g0, g1) of one K block, tile-major. The
// first tile is the one to find B outside L2 (from L3 or memory): it prefetches ahead.
template <bool PK>
void by_tiles(const GemmArgs& q, const float* blk, size_t i0, size_t i1, size_t g0, size_t g1, size_t k0, size_t kc,
           const GeluCoeffs& g) {
  const size_t step = PK ? MR * kc : MR * q.lda;
  const float* a = PK ? blk : q.a + i0 * q.lda + k0;
  size_t i = i0;
  if (i + MR <= i1) {
    for (size_t j = g0; j < g1; j += 2 * W) tile<MR, 2, PK, true>(q, a, i, j, k0, kc, g);
    i += MR;
    a += step;
  }
  for (; i + MR <= i1; i += MR, a += step)
    for (size_t j = g0; j < g1; j += 2 * W) tile<MR, 2, PK>(q, a, i, j, k0, kc, g);
  if (i < i1)
    for (size_t j = g0; j < g1; j += 2 * W) tail<MR - 1, 2, PK>(static_cast<int>(i1 - i), q, a, i, j, k0, kc, g);
}

// Rows [i0, i1) x columns [j0, j1) of C (j0 a multiple of kPanel); `ap` holds
// pack_floats(i1 - i0, K) floats, already the packed rows unless `pack` (a thread doing
// several column groups of one row block packs once). Column groups (whose B for one K block
// fits L2) outermost where A is packed or the block runs tile-major, then K blocks (C holds
// the partial sums between them), then the tiles: tile-major (by_tiles) for tall blocks,
// else panel by panel, the row tiles sharing each panel.
void rows(const GemmArgs& q, size_t i0, size_t i1, size_t j0, size_t j1, float* ap, bool pack) {
  const GeluCoeffs g = kGeluCoeffs;
  const bool pk = q.k >= PACK_A_FROM;
  if (pk && pack) pack_a(q, i0, i1, ap);
  const size_t padded = padded_rows(i1 - i0);
  const bool tile_major = i1 - i0 >= TILE_MAJOR_FROM;
  const bool grouped = pk || tile_major;
  for (size_t g0 = j0; g0 < j1; g0 += grouped ? GROUP : j1 - j0) {
    const size_t g1 = grouped && j1 - g0 > GROUP ? g0 + GROUP : j1;
    for (size_t k0 = 0; k0 < q.k; k0 += KC) {
      const size_t kc = q.k - k0 < KC ? q.k - k0 : KC;
      const float* blk = pk ? ap + padded * k0 : nullptr;
      size_t j = g0;
      if (tile_major) {
        j = g0 + (g1 - g0) / (2 * W) * (2 * W);
        if (pk)
          by_tiles<true>(q, blk, i0, i1, g0, j, k0, kc, g);
        else
          by_tiles<false>(q, nullptr, i0, i1, g0, j, k0, kc, g);
      }
      if (pk) {
        for (; j + 2 * W <= g1; j += 2 * W) panel<2, true>(q, blk, i0, i1, j, k0, kc, g);
        for (; j + W <= g1; j += W) panel<1, true>(q, blk, i0, i1, j, k0, kc, g);
      } else {
        for (; j + 2 * W <= g1; j += 2 * W) panel<2, false>(q, nullptr, i0, i1, j, k0, kc, g);
        for (; j + W <= g1; j += W) panel<1, false>(q, nullptr, i0, i1, j, k0, kc, g);
      }
      if (j < g1) columns(q, i0, i1, j, g1, k0, kc, g);
    }
  }
}

#undef MCK_ALWAYS
