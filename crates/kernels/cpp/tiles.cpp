// Register-tiled kernels, compiled once per instruction set:
// - GEMMs with the epilogue fused, for the 1x1 convolutions of FastViT (small K = 64-1536,
//   many rows): C = act(A B + bias) + residual, and the whole ConvMlp (fc1, GELU, fc2,
//   residual) per block of rows, so its hidden activations never leave the cache
//   (gemm_impl.h);
// - FastViT's depthwise convolutions (depthwise_impl.h);
// - attention's softmax and packing around its two GEMMs (attention_impl.h).
//
// Why not BLAS: through MLX's matmul, OpenBLAS first zeroes C (beta = 0), packs A and B on
// every call, and the bias / GELU / residual then take another pass over C (profile in
// BENCHMARKS.md: sgemm + packing 45%, epilogue 10%, memset 5% of S0's image tower).
//
// The bodies are compiled here once per instruction set (AVX-512, AVX2 + FMA, and a portable
// 128-bit one) with GCC vector types and chosen at run time, like MLAS's kernels.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kernels.h"
#include "math.h"
#include "pool.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MCK_X86_VARIANTS 1
#endif

namespace mck {

// What a call computes: C = act(A B + bias) + R, A [M, K] (row stride lda), B packed
// (kernels.h: [ceil(N / kPanel), K, kPanel]), C and R row strides ldc, ldr. bias, R may be null.
struct GemmArgs {
  const float* a;
  size_t lda;
  const float* b;
  const float* bias;
  const float* r;
  size_t ldr;
  float* c;
  size_t ldc;
  size_t k, n;
  int act;
};

// A depthwise conv (depthwise_impl.h): output channel o reads input channel o / m.
struct DwArgs {
  const float* x;     // [n, h, w, c]
  const float* wt;    // [k, k, c * m]
  const float* bias;  // [c * m] or null
  float* out;         // [n, ho, wo, c * m]
  size_t h, w, c;
  int act;
  size_t m, stride, ho, wo;
};

// Portable: 128-bit vectors (SSE2 on x86-64, NEON on arm64), 4 x 2 tiles.
namespace tiles_base {
typedef float V __attribute__((vector_size(16)));
constexpr int MR = 4;
#include "gemm_impl.h"
#include "attention_impl.h"
#include "depthwise_impl.h"
}  // namespace tiles_base

#ifdef MCK_X86_VARIANTS
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
// AVX2 + FMA: 16 ymm registers, 6 x 2 tiles (12 accumulators).
namespace tiles_avx2 {
typedef float V __attribute__((vector_size(32)));
constexpr int MR = 6;
#include "gemm_impl.h"
#include "attention_impl.h"
#include "depthwise_impl.h"
}  // namespace tiles_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
// AVX-512: 32 zmm registers, 12 x 2 tiles (24 accumulators, 2 B vectors, 1 broadcast).
namespace tiles_avx512 {
typedef float V __attribute__((vector_size(64)));
constexpr int MR = 12;
#include "gemm_impl.h"
#include "attention_impl.h"
#include "depthwise_impl.h"
}  // namespace tiles_avx512
#pragma GCC pop_options
#endif

namespace {

using Gemm = GemmArgs;

struct Variant {
  void (*rows)(const Gemm&, size_t, size_t, size_t, size_t, float*, bool);
  size_t mr;
  size_t (*pack_floats)(size_t, size_t);
  bool (*dw_rows)(const DwArgs&, size_t, size_t, size_t);
  void (*pack_transposed)(const float*, size_t, size_t, size_t, size_t, float*);
  void (*pack_rows)(const float*, size_t, size_t, size_t, float*);
  void (*softmax_rows)(float*, size_t, float, bool, size_t, size_t);
};

struct Picked {
  Variant v;
  const char* name;
};

// The widest variant this CPU runs, or a narrower one named by MOBILECLIP_TILES_ISA
// ("avx2", "baseline"; never one the CPU lacks): how the tests run the AVX2 and portable
// bodies on an AVX-512 machine (engine kernels::tests::narrower_variants_match_mlx).
Picked pick() {
  const char* env = std::getenv("MOBILECLIP_TILES_ISA");
  const std::string want = env ? env : "";
#ifdef MCK_X86_VARIANTS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4") && want != "avx2" && want != "baseline")
    return {{tiles_avx512::rows, tiles_avx512::MR, tiles_avx512::pack_floats, tiles_avx512::dw_rows,
             tiles_avx512::pack_transposed, tiles_avx512::pack_rows, tiles_avx512::softmax_rows},
            "avx512"};
  if (__builtin_cpu_supports("x86-64-v3") && want != "baseline")
    return {{tiles_avx2::rows, tiles_avx2::MR, tiles_avx2::pack_floats, tiles_avx2::dw_rows, tiles_avx2::pack_transposed,
             tiles_avx2::pack_rows, tiles_avx2::softmax_rows},
            "avx2"};
#endif
  return {{tiles_base::rows, tiles_base::MR, tiles_base::pack_floats, tiles_base::dw_rows, tiles_base::pack_transposed,
           tiles_base::pack_rows, tiles_base::softmax_rows},
          "baseline"};
}

const Picked& picked() {
  static const Picked p = pick();
  return p;
}

const Variant& variant() { return picked().v; }

// Runs body(item, slot, scratch) for items [0, n) on up to `t` threads of the pool, each item
// claimed on its own (the pool's chunks, n / (4 x threads) items each, left a thread idle for
// up to a chunk at the end: 2-7% on the text GEMMs, 13 row blocks over 2 threads). The pool
// deals the items as it deals any loop's range, in contiguous shares, so the rows a thread
// works on in one kernel are the rows it worked on in the one before (e.g. the depthwise conv
// before a FastViT MLP). Each running thread has a slot < t and `scratch_floats` floats of its
// own (uninitialized).
template <class F>
void for_items(size_t n, size_t t, size_t scratch_floats, F&& body) {
  t = std::max<size_t>(1, std::min(t, n));
  std::vector<std::unique_ptr<float[]>> scratch(t);
  parallel_for_slots(n, 1, t, 1, [&](size_t i0, size_t i1, size_t slot) {
    if (scratch_floats && !scratch[slot]) scratch[slot].reset(new float[scratch_floats]);
    for (size_t it = i0; it < i1; ++it) body(it, slot, scratch[slot].get());
  });
}

// Rows per block. Every block streams all of its columns' B (the weights: up to 64 MB for
// the widest FastViT stage, from L3 or memory), so blocks are as tall as L2 allows for the
// block's A (rows x K block) and C rows (~1 MB of 2 MB per core), and at least 8 tiles.
size_t block_rows(size_t k, size_t n, size_t mr) {
  // (a long K packs the block's whole A: all of K counts)
  size_t per_row = ((variant().pack_floats(1, k) ? k : std::min<size_t>(k, 256)) + n) * sizeof(float);
  size_t r = std::clamp<size_t>((1024 * 1024) / std::max<size_t>(per_row, 1), 8 * mr, 512);
  return r / mr * mr;
}

// Rows [0, m) in `blocks` blocks of whole register tiles, dealt evenly (the first `extra`
// blocks one tile taller).
struct RowBlocks {
  size_t m, mr, blocks, per, extra;
  RowBlocks(size_t m_, size_t mr_, size_t want) : m(m_), mr(mr_) {
    const size_t tiles = (m + mr - 1) / mr;
    blocks = std::max<size_t>(1, std::min(want, tiles));
    per = tiles / blocks;
    extra = tiles % blocks;
  }
  size_t start(size_t b) const { return std::min(m, mr * (b * per + std::min(b, extra))); }
  size_t max_rows() const { return (per + (extra ? 1 : 0)) * mr; }
};

// Rows per block of one GEMM. With a long K (packed A, columns in groups: rows()) only one K
// block of the rows' A and their C of one column group are worked on at a time, so blocks
// can be taller than block_rows: every block streams all of B (a ViT's 7-9 MB per layer from
// memory), so fewer blocks means less traffic (ViT-B at batch 1: 197 rows in one block).
size_t gemm_block_rows(size_t k, size_t n, size_t mr) {
  if (!variant().pack_floats(1, k)) return block_rows(k, n, mr);
  size_t per_row = (256 + std::min<size_t>(n, 16 * kPanel)) * sizeof(float);
  size_t r = std::clamp<size_t>((1024 * 1024) / per_row, 8 * mr, 512);
  return r / mr * mr;
}

// One GEMM split over the pool: row blocks, and when there are too few of them to keep every
// thread busy (a batch of one through a late stage: 16-64 rows), column groups of whole
// panels as well. The row tiles are dealt evenly to a multiple of `threads` blocks (blocks of
// 336 rows over 3152 left one thread a block short at the end: 10% of ViT-B's GEMM time at
// 2 threads).
void gemm(const Gemm& q, size_t m) {
  const Variant& v = variant();
  const size_t t_max = static_cast<size_t>(threads());
  // Small problems stay on one thread (waking one costs more than ~256K multiply-adds).
  const size_t work = m * q.k * q.n;
  const size_t t = work < (size_t{1} << 18) ? 1 : t_max;
  const size_t block = gemm_block_rows(q.k, q.n, v.mr);
  size_t row_blocks = (m + block - 1) / block;
  if (row_blocks > 1) row_blocks = (row_blocks + t - 1) / t * t;
  const RowBlocks rb(m, v.mr, row_blocks);
  row_blocks = rb.blocks;
  const size_t panels = (q.n + kPanel - 1) / kPanel;
  const size_t want = 4 * t_max;
  // (a packed A with a block per thread already: column groups would have two threads pack
  // the same rows)
  const bool packs = v.pack_floats(1, q.k) != 0;
  size_t groups = row_blocks >= want || (packs && row_blocks % t == 0 && row_blocks >= t)
                      ? 1
                      : std::min(panels, (want + row_blocks - 1) / row_blocks);
  groups = std::max<size_t>(1, std::min(groups, work / (size_t{1} << 18)));
  const size_t per_group = (panels + groups - 1) / groups;
  groups = (panels + per_group - 1) / per_group;
  // The row block whose A each thread's scratch holds packed.
  std::vector<size_t> packed(t, SIZE_MAX);
  for_items(row_blocks * groups, t, v.pack_floats(rb.max_rows(), q.k), [&](size_t it, size_t slot, float* ap) {
    const size_t b = it / groups, cg = it % groups;
    const size_t j0 = cg * per_group * kPanel;
    v.rows(q, rb.start(b), rb.start(b + 1), j0, std::min(j0 + per_group * kPanel, q.n), ap, packed[slot] != b);
    packed[slot] = b;
  });
}

}  // namespace

void linear(const float* x, const float* w, const float* bias, const float* residual, float* out, size_t m, size_t k,
            size_t n, int act) {
  gemm(Gemm{x, k, w, bias, residual, n, out, n, k, n, act}, m);
}

namespace {

// How mlp runs m rows with t threads: fused per row block (one hidden buffer of block x
// hidden per thread; the blocks dealt evenly to a multiple of t, so a batch of one through
// FastViT's stage 3, 256 rows, is one block per thread), or, with fewer than 8 tiles per
// block (a late stage at a small batch), as two GEMMs through one hidden buffer of m x hidden
// (nullopt), whose columns the threads share: each thread's own block would stream all the
// weights once more. (Blocks of at least two per thread, as before, made S2's stage 3 two
// GEMMs: the second packed all 256 rows of A in both threads and dealt 5 column groups to 2.)
// Where rounding the count of L2-sized blocks up leaves them under 8 tiles (a transformer's
// MLP: 1232 rows at blocks of 96), it is rounded down instead: one block per thread there
// held 5-7 MB of hidden activations each and ran the text and ViT towers 3-12% slower.
std::optional<RowBlocks> mlp_blocks(size_t m, size_t c, size_t hidden, size_t t) {
  const size_t mr = variant().mr;
  const size_t rows = block_rows(c, hidden + c, mr);
  RowBlocks rb(m, mr, ((m + rows - 1) / rows + t - 1) / t * t);
  if (rb.per < 8) rb = RowBlocks(m, mr, std::max(t, m / rows / t * t));
  if (rb.per < 8) rb = RowBlocks(m, mr, t);
  if (rb.per < 8) return std::nullopt;
  return rb;
}

}  // namespace

size_t mlp_scratch_floats(size_t m, size_t c, size_t hidden, size_t threads) {
  const size_t t = std::max<size_t>(threads, 1);
  const auto rb = mlp_blocks(m, c, hidden, t);
  return (rb ? std::min(t, rb->blocks) * rb->max_rows() : m) * hidden;
}

void mlp(const float* y, const float* x, const float* w1, const float* b1, const float* w2, const float* b2,
         float* out, size_t m, size_t c, size_t hidden, size_t threads, float* scratch) {
  const size_t t = std::max<size_t>(threads, 1);
  const auto rb = mlp_blocks(m, c, hidden, t);
  if (!rb) {
    // fc1 and fc2 as two GEMMs, each split over columns as well.
    gemm(Gemm{y, c, w1, b1, nullptr, 0, scratch, hidden, c, hidden, kGelu}, m);
    gemm(Gemm{scratch, hidden, w2, b2, x, c, out, c, hidden, c, kNone}, m);
    return;
  }
  // Each running thread takes its own of the t hidden buffers.
  const Variant& v = variant();
  const size_t block = rb->max_rows();
  for_items(rb->blocks, t, v.pack_floats(block, std::max(c, hidden)), [&](size_t blk, size_t slot, float* ap) {
    float* h = scratch + slot * block * hidden;
    const size_t i = rb->start(blk), rows = rb->start(blk + 1) - i;
    v.rows(Gemm{y + i * c, c, w1, b1, nullptr, 0, h, hidden, c, hidden, kGelu}, 0, rows, 0, hidden, ap, true);
    v.rows(Gemm{h, hidden, w2, b2, x + i * c, c, out + i * c, c, hidden, c, kNone}, 0, rows, 0, c, ap, true);
  });
}

namespace {

// Attention's per-thread working set for one head: scores [l, lp] (lp = l rounded up to 16
// columns, so the score GEMM runs in whole vectors), k^T packed as a GEMM weight (lp columns),
// v packed (d columns), and packed A for a sequence long enough to pack it (K >= 512).
constexpr size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }
struct AttnLayout {
  size_t lp, scores, kt, v, ap;
  AttnLayout(size_t l, size_t d)
      : lp(round_up(l, 16)),
        scores(l * lp),
        kt(round_up(lp, kPanel) * d),
        v(round_up(d, kPanel) * l),
        ap(variant().pack_floats(l, std::max(l, d))) {}
  size_t total() const { return scores + kt + v + ap; }
};

}  // namespace

size_t attention_scratch_floats(size_t l, size_t d) { return AttnLayout(l, d).total(); }

void attention(const float* qkv, float* out, size_t b, size_t l, size_t heads, size_t d, bool causal, size_t threads,
               float* scratch) {
  const Variant& v = variant();
  const AttnLayout lay(l, d);
  const size_t w = heads * d, ld = 3 * w;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for_items(b * heads, std::max<size_t>(threads, 1), 0, [&](size_t it, size_t slot, float*) {
    const size_t n = it / heads, h = it % heads;
    const float* q = qkv + n * l * ld + h * d;
    const float* k = q + w;
    const float* val = q + 2 * w;
    float* s = scratch + slot * lay.total();
    float* kt = s + lay.scores;
    float* vp = kt + lay.kt;
    float* ap = vp + lay.v;
    // k^T and v as packed GEMM weights; k^T's padding columns are 0 and give scores the
    // softmax never reads.
    v.pack_transposed(k, ld, l, d, lay.lp, kt);
    v.pack_rows(val, ld, l, d, vp);
    v.rows(Gemm{q, ld, kt, nullptr, nullptr, 0, s, lay.lp, d, lay.lp, kNone}, 0, l, 0, lay.lp, ap, true);
    v.softmax_rows(s, lay.lp, scale, causal, l, l);
    v.rows(Gemm{s, lay.lp, vp, nullptr, nullptr, 0, out + n * l * w + h * d, w, l, d, kNone}, 0, l, 0, d, ap, true);
  });
}

bool depthwise_tiled(const float* x, const float* wt, const float* bias, float* out, size_t n, size_t h, size_t w,
                     size_t c, size_t m, size_t k, size_t stride, size_t ho, size_t wo, int act) {
  const DwArgs q{x, wt, bias, out, h, w, c, act, m, stride, ho, wo};
  // (dw_rows over no rows says whether the shape has a tiled body; else the caller's loop)
  if (!variant().dw_rows(q, k, 0, 0)) return false;
  // rows of >= ~64K multiply-adds per chunk
  const size_t grain = std::max<size_t>(1, 65536 / std::max<size_t>(wo * c * m * k * k, 1));
  parallel_for(n * ho, grain, [&](size_t a, size_t b) { variant().dw_rows(q, k, a, b); });
  return true;
}

const char* tiles_isa() { return picked().name; }

}  // namespace mck
