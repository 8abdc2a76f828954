// Scalar math the loops inline, written branch-free so that GCC vectorizes the loops that
// call them. Compiled with -ffp-contract=off (build.rs): the same float operations in the
// same order as the MLX op chains they replace (engine nn::gelu), so results agree to the bit
// (in elementwise.cpp; conv.cpp is built with contraction, so its fused GELU may differ by an ulp)
// where the order is the same.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace mck {

// The folded rational-erf GELU of the engine's nn::gelu (same coefficients, same order):
// u = clip(x, +-4 sqrt 2), z = u^2, gelu(x) = x (0.5 + u P'(z) / Q'(z)).
struct GeluCoeffs {
  float p[7];
  float q[5];
  float lim;
  GeluCoeffs() {
    static const double alpha[7] = {-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                                    -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                                    -1.60960333262415e-02};
    static const double beta[5] = {-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                                   -7.37332916720468e-03, -1.42647390514189e-02};
    // As the engine: the constants are first rounded to f32, then scaled in f64.
    double lead = static_cast<double>(static_cast<float>(beta[0])) / 16.0;
    double scale = 0.5 * 0.70710678118654752440 / lead;
    for (int i = 0; i < 7; ++i)
      p[i] = static_cast<float>(static_cast<double>(static_cast<float>(alpha[i])) * scale / std::ldexp(1.0, 6 - i));
    for (int i = 0; i < 5; ++i)
      q[i] = static_cast<float>(static_cast<double>(static_cast<float>(beta[i])) / lead / std::ldexp(1.0, 4 - i));
    lim = 4.0f * 1.41421356237309504880f;
  }
};

extern const GeluCoeffs kGeluCoeffs;

// MLX's clip is minimum(maximum(x, lo), hi) with NaN propagating. Written as two selects
// that keep x when the comparison is false (so NaN passes through), which GCC turns into
// vmaxps/vminps with the right operand order: branch-free, vectorized.
static inline float clip_nan(float x, float lo, float hi) {
  float a = x < lo ? lo : x;
  return a > hi ? hi : a;
}

static inline float gelu1(float x, const GeluCoeffs& g) {
  float u = clip_nan(x, -g.lim, g.lim);
  float z = u * u;
  float num = z * g.p[0] + g.p[1];
  num = num * z + g.p[2];
  num = num * z + g.p[3];
  num = num * z + g.p[4];
  num = num * z + g.p[5];
  num = num * z + g.p[6];
  float den = z + g.q[1];
  den = den * z + g.q[2];
  den = den * z + g.q[3];
  den = den * z + g.q[4];
  float phi = (u * num) / den + 0.5f;
  return x * phi;
}

}  // namespace mck
