// The loops behind the MLX primitives in primitives.cpp: plain C++ over contiguous float32
// buffers, written so that GCC vectorizes them, compiled for AVX-512, AVX2+FMA and baseline
// x86-64 and chosen at run time (MCK_CLONES), split over the pool's threads (pool.h).
#pragma once

#include <cstddef>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MCK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MCK_CLONES
#endif

namespace mck {

enum Act : int { kNone = 0, kGelu = 1 };

// out = act(y * scale + bias) + residual over rows of width c; each of scale [samples, c],
// bias [c], residual [rows, c] may be null; scale row = row / rows_per_sample.
void epilogue(const float* y, const float* scale, const float* bias, const float* residual, float* out, size_t rows,
              size_t c, size_t rows_per_sample, int act);

// LayerNorm over rows of width c (biased variance, as torch).
void layer_norm(const float* x, const float* w, const float* b, float eps, float* out, size_t rows, size_t c);

// Multi-head self-attention from the stacked projections: qkv [b, l, 3 * heads * d] (q, k, v
// of head h at columns h * d, W + h * d, 2 W + h * d) -> out [b, l, W], W = heads * d:
// softmax(q k^T / sqrt(d)) v per head, read and written in place (no head split or merge),
// one head at a time per thread with its scores in `scratch` (threads x
// attention_scratch_floats(l, d) floats, from the caller: MLX's allocator).
void attention(const float* qkv, float* out, size_t b, size_t l, size_t heads, size_t d, bool causal, size_t threads,
               float* scratch);
size_t attention_scratch_floats(size_t l, size_t d);

// Depthwise k x k conv, NHWC, zero padding k/2, channel multiplier m (output channel
// ci*m + j reads input channel ci): x [n, h, w, cin], wt [k, k, cin*m], bias [cin*m] or null.
void depthwise(const float* x, const float* wt, const float* bias, float* out, size_t n, size_t h, size_t w, size_t cin,
               size_t m, size_t k, size_t stride, size_t ho, size_t wo, int act);

// Dense k x k conv for few input channels (a stem), NHWC: wt [k, k, cin, cout].
void conv_small(const float* x, const float* wt, const float* bias, float* out, size_t n, size_t h, size_t w, size_t cin,
                size_t cout, size_t k, size_t stride, size_t ho, size_t wo, int act);

// Columns per panel of a packed GEMM weight: the [k, n] matrix is stored as ceil(n / kPanel)
// panels, each [k, kPanel] row-major (columns past n are 0). The loader packs once.
constexpr size_t kPanel = 32;

// out = act(x w + bias) + residual: x [m, k], w packed [ceil(n / kPanel), k, kPanel], bias [n],
// residual [m, n] (bias, residual may be null). A register-tiled GEMM with the epilogue fused
// (tiles.cpp).
void linear(const float* x, const float* w, const float* bias, const float* residual, float* out, size_t m, size_t k,
            size_t n, int act);

// out = x + (gelu(y w1 + b1) w2 + b2): FastViT's ConvMlp after its depthwise conv and a
// transformer block's MLP after its norm, per block of rows so the hidden activations stay
// in cache. y, x, out [m, c]; w1 [c, hidden] and w2 [hidden, c], packed as for linear;
// `scratch` holds mlp_scratch_floats(m, c, hidden, threads) floats for the hidden
// activations (the caller allocates it: MLX's allocator, so MLX's memory accounting and
// buffer cache see it).
void mlp(const float* y, const float* x, const float* w1, const float* b1, const float* w2, const float* b2,
         float* out, size_t m, size_t c, size_t hidden, size_t threads, float* scratch);
size_t mlp_scratch_floats(size_t m, size_t c, size_t hidden, size_t threads);

// depthwise() with the register-tiled body (tiles.cpp, depthwise_impl.h) for FastViT's shapes
// (k 3, 5, 7 at stride 1; k 3, 7 at stride 2; multiplier 1 or 2 with k 3 / 7 as listed in
// dw_rows); false (nothing done) for others.
bool depthwise_tiled(const float* x, const float* wt, const float* bias, float* out, size_t n, size_t h, size_t w,
                     size_t c, size_t m, size_t k, size_t stride, size_t ho, size_t wo, int act);

// Which instruction set the clones resolved to on this CPU: "avx512", "avx2" or "baseline".
const char* isa();
// Which body the register-tiled kernels (tiles.cpp) run: "avx512", "avx2" or "baseline".
const char* tiles_isa();

}  // namespace mck
