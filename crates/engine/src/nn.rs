//! Building blocks on MLX shared by the towers. NHWC layout throughout.

use mlx_rs::Array;

use crate::error::Result;
use crate::kernels::{self, Act};
use crate::params::Params;

/// A linear layer `x @ w + b`, in one of two weight layouts:
/// - from PyTorch's [out, in] as it is: `w` is its transposed view, which costs nothing in
///   MLX (the BLAS GEMM takes the transpose flag), so the file's tensor is used uncopied;
/// - packed: `w` is the kernel layer's packed form ([`kernels::pack_out_in`]: made once by the
///   loader, kept so by the weights cache), which its fused GEMM reads: bias, GELU and residual
///   are applied before C is stored (FastViT's 1x1 convs, the text and ViT towers: there it
///   matches or beats BLAS plus a separate epilogue pass; BENCHMARKS.md).
pub struct Linear {
    w: Array,
    bias: Option<Array>,
    /// Output columns of a packed weight (None: a BLAS weight view).
    packed_n: Option<usize>,
}

impl Linear {
    pub fn from_torch(weight: Array, bias: Option<Array>) -> Result<Self> {
        Ok(Linear { w: weight.transpose()?, bias, packed_n: None })
    }

    /// `w`: the packed form of an [out = n, in] weight.
    pub fn packed(w: Array, n: usize, bias: Option<Array>) -> Self {
        Linear { w, bias, packed_n: Some(n) }
    }

    /// The model file's weight `wkey` ([out, in]) packed, and its bias `bkey` ([out]).
    pub fn packed_from(p: &Params, wkey: &str, shape: &[usize], bkey: &str) -> Result<Self> {
        let &[out, cin] = shape else {
            return Err(crate::error::EngineError::Model(format!("{wkey}: {shape:?} is not a linear weight")));
        };
        let w = p.packed(out, cin, || p.src().f32_vec(wkey, shape))?;
        Ok(Linear::packed(w, out, Some(p.tensor(bkey, &[out])?)))
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        self.forward_with(x, Act::None, None)
    }

    /// The packed weight and the bias, when the layer is packed with a bias.
    fn packed_parts(&self) -> Option<(&Array, &Array)> {
        self.packed_n.and(self.bias.as_ref()).map(|b| (&self.w, b))
    }

    /// `act(x @ w + b) + residual`: one fused kernel GEMM (packed), or the GEMM in BLAS and
    /// everything after it in one kernel pass.
    pub fn forward_with(&self, x: &Array, act: Act, residual: Option<&Array>) -> Result<Array> {
        if let Some(n) = self.packed_n {
            return kernels::linear(x, &self.w, n, self.bias.as_ref(), residual, act);
        }
        let y = x.matmul(&self.w)?;
        if self.bias.is_none() && act == Act::None && residual.is_none() {
            return Ok(y);
        }
        kernels::epilogue(&y, None, self.bias.as_ref(), residual, act)
    }
}

/// The pre-LN transformer block of the text tower and of the ViT image towers:
/// x += proj(MHA(norm1 x)); x += fc2(gelu(fc1(norm2 x))). `qkv` holds q, k, v stacked.
pub struct EncoderBlock {
    pub norm1: Norm,
    pub qkv: Linear,
    pub proj: Linear,
    pub norm2: Norm,
    pub fc1: Linear,
    pub fc2: Linear,
}

impl EncoderBlock {
    /// `x`: [B, L, W] -> [B, L, W], with `heads` heads of W / heads.
    pub fn forward(&self, x: &Array, heads: i32, causal: bool) -> Result<Array> {
        let att = kernels::multi_head_attention(&self.qkv.forward(&self.norm1.forward(x)?)?, heads, causal)?;
        let x = self.proj.forward_with(&att, Act::None, Some(x))?;
        self.mlp(&x)
    }

    /// x + fc2(gelu(fc1(norm2 x))): one kernel that keeps the hidden activations in cache
    /// when both layers are packed, else two GEMMs.
    fn mlp(&self, x: &Array) -> Result<Array> {
        let y = self.norm2.forward(x)?;
        if let (Some((w1, b1)), Some((w2, b2))) = (self.fc1.packed_parts(), self.fc2.packed_parts()) {
            return kernels::mlp(&y, x, w1, b1, w2, b2);
        }
        let h = self.fc1.forward_with(&y, Act::Gelu, None)?;
        self.fc2.forward_with(&h, Act::None, Some(x))
    }

    /// `forward`, then row `rows[i]` of the flattened [B * L, W] output: [rows, W]. Exact and
    /// cheaper for a pooled last block: attention needs every token's keys and values, but
    /// the projection, the MLP and the residuals are per token, so they run on the kept rows.
    pub fn forward_rows(&self, x: &Array, heads: i32, causal: bool, rows: &Array) -> Result<Array> {
        let s = x.shape();
        let (b, l, w) = (s[0], s[1], s[2]);
        let att = kernels::multi_head_attention(&self.qkv.forward(&self.norm1.forward(x)?)?, heads, causal)?;
        let pick = |a: &Array| -> Result<Array> { Ok(a.reshape(&[b * l, w])?.take_axis(rows, 0)?) };
        let x = self.proj.forward_with(&pick(&att)?, Act::None, Some(&pick(x)?))?;
        self.mlp(&x)
    }
}

/// LayerNorm over the last axis (a kernel on CPU, MLX's fast::layer_norm elsewhere).
pub struct Norm {
    weight: Array,
    bias: Array,
    eps: f32,
}

impl Norm {
    pub fn layer(weight: Array, bias: Array, eps: f32) -> Self {
        Norm { weight, bias, eps }
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        kernels::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Exact (erf) GELU as MLX ops, as torch.nn.GELU() and open_clip use; the towers run the same
/// formula as a kernel ([`kernels::gelu`]) and this is its reference: 0.5 x (1 + erf(x / sqrt 2)),
/// with erf the rational approximation of [`erf_rational`], its constants folded so that
/// fewer element-wise passes run (each one a single-threaded sweep on MLX CPU):
/// with u = clip(x, +-4 sqrt 2) and z = u^2, erf(u / sqrt 2) = (u / sqrt 2) P(z / 2) / Q(z / 2),
/// so gelu(x) = x (0.5 + u P'(z) / Q'(z)) where Q'(z) = Q(z / 2) / lead is monic and
/// P'(z) = P(z / 2) 0.5 / (sqrt 2 lead). 26 passes instead of 29; same approximant
/// (differences are float32 rounding).
pub fn gelu(x: &Array) -> Result<Array> {
    let (p, q) = gelu_coeffs();
    let lim = 4.0 * std::f32::consts::SQRT_2;
    let u = mlx_rs::ops::clip(x, (-lim, lim))?;
    let z = u.square()?;
    let mut num = z.multiply(Array::from_f32(p[0]))?.add(Array::from_f32(p[1]))?;
    for &c in &p[2..] {
        num = num.multiply(&z)?.add(Array::from_f32(c))?;
    }
    let mut den = z.add(Array::from_f32(q[1]))?;
    for &c in &q[2..] {
        den = den.multiply(&z)?.add(Array::from_f32(c))?;
    }
    let phi = u.multiply(&num)?.divide(&den)?.add(Array::from_f32(0.5))?;
    Ok(x.multiply(&phi)?)
}

/// (P', Q') of [`gelu`], highest degree first, from ERF_ALPHA / ERF_BETA in f64.
fn gelu_coeffs() -> ([f32; 7], [f32; 5]) {
    let lead = ERF_BETA[0] as f64 / 16.0;
    let scale = 0.5 * std::f64::consts::FRAC_1_SQRT_2 / lead;
    let mut p = [0f32; 7];
    for (i, &a) in ERF_ALPHA.iter().enumerate() {
        p[i] = (a as f64 * scale / 2f64.powi(6 - i as i32)) as f32;
    }
    let mut q = [0f32; 5];
    for (i, &b) in ERF_BETA.iter().enumerate() {
        q[i] = (b as f64 / lead / 2f64.powi(4 - i as i32)) as f32;
    }
    (p, q)
}

/// erf for float32 from multiplies, adds and one divide: on this MLX (CPU, no compile) the
/// transcendental `erf` costs ~27 ms per million elements against ~0.2 ms for a multiply,
/// and the text tower's GELUs ran ~0.8 s of a 2 s batch of 16.
///
/// The rational approximation Eigen and XLA use for float erf (Eigen `generic_fast_erf_float`):
/// x clamped to [-4, 4] (erf is +-1 in float32 beyond), erf(x) ~ x P(x^2) / Q(x^2). Its error
/// against MLX's erf is measured in the tests below.
#[cfg(test)]
pub fn erf_rational(x: &Array) -> Result<Array> {
    erf_rational_with(x, &ERF_ALPHA, &ERF_BETA)
}

// Eigen's coefficients digit for digit (so they can be checked against its source); Rust
// rounds them to the f32 values Eigen's float literals have.
#[allow(clippy::excessive_precision)]
const ERF_ALPHA: [f32; 7] = [
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
];
#[allow(clippy::excessive_precision)]
const ERF_BETA: [f32; 5] =
    [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03, -1.42647390514189e-02];

#[cfg(test)]
fn erf_rational_with(x: &Array, alpha: &[f32], beta: &[f32]) -> Result<Array> {
    let x = mlx_rs::ops::clip(x, (-4.0f32, 4.0f32))?;
    let x2 = x.square()?;
    let horner = |coeffs: &[f32]| -> Result<Array> {
        let mut acc = Array::from_f32(coeffs[0]);
        for &c in &coeffs[1..] {
            acc = acc.multiply(&x2)?.add(Array::from_f32(c))?;
        }
        Ok(acc)
    };
    let p = x.multiply(&horner(alpha)?)?;
    let q = horner(beta)?;
    Ok(p.divide(&q)?)
}

/// Row-wise L2 normalisation over the last axis, as torch.nn.functional.normalize (eps 1e-12).
pub fn l2_normalize(x: &Array) -> Result<Array> {
    let norm = x.square()?.sum_axis(-1, true)?.sqrt()?;
    let norm = mlx_rs::ops::maximum(&norm, Array::from_f32(1e-12))?;
    Ok(x.divide(&norm)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rational erf against MLX's own erf on a dense grid over [-6, 6]: float32-level.
    #[test]
    fn erf_rational_is_float32_accurate() {
        crate::runtime::init(Default::default()).unwrap();
        let xs: Vec<f32> = (0..120_001).map(|i| -6.0 + i as f32 * 1e-4).collect();
        let x = Array::from_slice(&xs, &[xs.len() as i32]);
        let fast = erf_rational(&x).unwrap();
        let exact = mlx_rs::ops::erf(&x).unwrap();
        let diff = fast.subtract(&exact).unwrap().abs().unwrap().max(None).unwrap();
        diff.eval().unwrap();
        let d: f32 = diff.try_item_exact().unwrap();
        assert!(d < 5e-7, "max |erf_rational - erf| = {d}");
    }

    /// The folded GELU against 0.5 x (1 + erf(x / sqrt 2)) with MLX's own erf.
    #[test]
    fn gelu_matches_erf_gelu() {
        crate::runtime::init(Default::default()).unwrap();
        let xs: Vec<f32> = (0..200_001).map(|i| -10.0 + i as f32 * 1e-4).collect();
        let x = Array::from_slice(&xs, &[xs.len() as i32]);
        let half_x = x.multiply(Array::from_f32(0.5)).unwrap();
        let e = mlx_rs::ops::erf(x.multiply(Array::from_f32(std::f32::consts::FRAC_1_SQRT_2)).unwrap()).unwrap();
        let exact = half_x.multiply(e.add(Array::from_f32(1.0)).unwrap()).unwrap();
        let diff = gelu(&x).unwrap().subtract(&exact).unwrap().abs().unwrap().max(None).unwrap();
        let d: f32 = diff.try_item_exact().unwrap();
        assert!(d < 2e-6, "max |gelu - erf gelu| = {d}");
    }
}
