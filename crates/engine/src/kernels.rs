//! The towers' one door to the kernel layer (crates/kernels: MLX custom primitives,
//! vectorized and multi-threaded on CPU). Each function here picks the kernel on the CPU and
//! the plain MLX op chain it replaces elsewhere (Metal: MLX's own GPU kernels are fast there;
//! untested, no Mac here). The plain chains are also what the kernels are tested against.

use mlx_rs::Array;
pub use mobileclip_kernels::Act;

use crate::error::{EngineError, Result};
use crate::nn;

fn kerr(e: mobileclip_kernels::KernelError) -> EngineError {
    EngineError::Mlx(format!("kernel: {e}"))
}

/// True when the default device is the CPU (where the kernels run).
pub fn on_cpu() -> bool {
    !matches!(mlx_rs::Device::try_default().and_then(|d| d.get_type()), Ok(mlx_rs::DeviceType::Gpu))
}

/// Threads for the kernels of this process (the runtime sets it with OpenBLAS's).
pub fn set_threads(n: usize) {
    mobileclip_kernels::set_threads(n)
}

pub fn threads() -> usize {
    mobileclip_kernels::threads()
}

/// Instruction set the kernels run with on this CPU.
pub fn isa() -> &'static str {
    mobileclip_kernels::isa()
}

pub use mobileclip_kernels::Owner;

/// A float32 array over memory MLX did not allocate (the weights cache's mapping), without a
/// copy; `owner` lives until MLX frees the array. Errs where MLX cannot wrap foreign memory.
///
/// # Safety
/// As [`mobileclip_kernels::external_f32`]: `data` holds the shape's floats, 4-byte aligned,
/// with 8 readable bytes before it, valid and unmodified while `owner` lives.
pub unsafe fn external_f32(data: *const f32, shape: &[i32], owner: Owner) -> Result<Array> {
    // SAFETY: the caller's contract is the callee's.
    unsafe { mobileclip_kernels::external_f32(data, shape, owner) }.map_err(kerr)
}

/// `act(y * scale + bias) + residual`: the epilogue of a GEMM or conv in one pass.
/// `y` [.., C]; `scale` [S, C] (per-sample channel scale, rows / S rows each); `bias` [C].
pub fn epilogue(y: &Array, scale: Option<&Array>, bias: Option<&Array>, residual: Option<&Array>, act: Act) -> Result<Array> {
    if on_cpu() {
        return mobileclip_kernels::epilogue(y, scale, bias, residual, act).map_err(kerr);
    }
    reference::epilogue(y, scale, bias, residual, act)
}

/// Exact GELU (the rational-erf form of [`nn::gelu`]). The towers fuse it into
/// [`epilogue`]; the kernel tests check it on its own.
#[cfg(test)]
pub fn gelu(x: &Array) -> Result<Array> {
    epilogue(x, None, None, None, Act::Gelu)
}

/// LayerNorm over the last axis.
pub fn layer_norm(x: &Array, w: &Array, b: &Array, eps: f32) -> Result<Array> {
    if on_cpu() {
        return mobileclip_kernels::layer_norm(x, w, b, eps).map_err(kerr);
    }
    Ok(mlx_rs::fast::layer_norm(x, w, b, eps)?)
}

/// Multi-head self-attention from the stacked projections: `qkv` [B, L, 3 W] (q, k, v, each
/// `heads` heads of W / heads) -> [B, L, W], softmax(q k^T / sqrt(d)) v per head; `causal`:
/// token i sees tokens 0 ..= i. On CPU one kernel reads q, k, v in place and writes every
/// head into its columns, its scores one head at a time in cache.
pub fn multi_head_attention(qkv: &Array, heads: i32, causal: bool) -> Result<Array> {
    if on_cpu() {
        let h = usize::try_from(heads).map_err(|_| EngineError::InvalidInput(format!("attention: {heads} heads")))?;
        return mobileclip_kernels::attention(qkv, h, causal).map_err(kerr);
    }
    reference::multi_head_attention(qkv, heads, causal)
}

pub use mobileclip_kernels::attention_scratch_floats;

/// Depthwise k x k conv (NHWC, padding k / 2) with channel multiplier: `w` [k, k, C, m],
/// `bias` [C * m]; then `act`.
pub fn depthwise(x: &Array, w: &Array, bias: Option<&Array>, stride: usize, act: Act) -> Result<Array> {
    if on_cpu() {
        return mobileclip_kernels::depthwise(x, w, bias, stride, act).map_err(kerr);
    }
    reference::depthwise(x, w, bias, stride, act)
}

/// Dense k x k conv for few input channels (NHWC, padding k / 2): `w` [k, k, Cin, O].
pub fn conv_small(x: &Array, w: &Array, bias: Option<&Array>, stride: usize, act: Act) -> Result<Array> {
    if on_cpu() {
        return mobileclip_kernels::conv_small(x, w, bias, stride, act).map_err(kerr);
    }
    reference::conv_small(x, w, bias, stride, act)
}

pub use mobileclip_kernels::{mlp_scratch_floats, pack_out_in, packed_shape};

/// `act(x w + bias) + residual` as one fused GEMM; `w` the packed K x N weight ([`pack_out_in`]).
pub fn linear(x: &Array, w: &Array, n: usize, bias: Option<&Array>, residual: Option<&Array>, act: Act) -> Result<Array> {
    if on_cpu() {
        return mobileclip_kernels::linear(x, w, n, bias, residual, act).map_err(kerr);
    }
    reference::linear(x, w, n, bias, residual, act)
}

/// `x + (gelu(y w1 + b1) w2 + b2)` (FastViT's ConvMlp after its conv, a transformer block's
/// MLP after its norm), hidden kept in cache; `w1`, `w2` packed.
pub fn mlp(y: &Array, x: &Array, w1: &Array, b1: &Array, w2: &Array, b2: &Array) -> Result<Array> {
    if on_cpu() {
        return mobileclip_kernels::mlp(y, x, w1, b1, w2, b2).map_err(kerr);
    }
    reference::mlp(y, x, w1, b1, w2, b2)
}

/// The plain MLX op chains the kernels replace: used off the CPU and by the tests.
pub mod reference {
    use super::*;

    fn act(x: Array, a: Act) -> Result<Array> {
        match a {
            Act::None => Ok(x),
            Act::Gelu => nn::gelu(&x),
        }
    }

    pub fn epilogue(y: &Array, scale: Option<&Array>, bias: Option<&Array>, residual: Option<&Array>, a: Act) -> Result<Array> {
        let mut t = y.clone();
        if let Some(s) = scale {
            // [S, C] -> rows of y grouped by sample
            let shape = y.shape().to_vec();
            let c = *shape.last().unwrap_or(&1);
            let samples = s.shape()[0];
            let t3 = t.reshape(&[samples, -1, c])?.multiply(&s.reshape(&[samples, 1, c])?)?;
            t = t3.reshape(&shape)?;
        }
        if let Some(b) = bias {
            t = t.add(b)?;
        }
        let t = act(t, a)?;
        match residual {
            Some(r) => Ok(r.add(&t)?),
            None => Ok(t),
        }
    }

    /// A packed weight [P, K, PANEL] back to [K, N].
    pub fn unpack(w: &Array, n: usize) -> Result<Array> {
        let s = w.shape();
        if s.len() != 3 {
            return Err(EngineError::InvalidInput(format!("linear: weight {s:?} is not packed [P, K, {}]", mobileclip_kernels::PANEL)));
        }
        use mlx_rs::ops::indexing::TryIndexOp;
        Ok(w.transpose_axes(&[1, 0, 2])?.reshape(&[s[1], s[0] * s[2]])?.try_index((.., ..n as i32))?)
    }

    pub fn linear(x: &Array, w: &Array, n: usize, bias: Option<&Array>, residual: Option<&Array>, a: Act) -> Result<Array> {
        epilogue(&x.matmul(&unpack(w, n)?)?, None, bias, residual, a)
    }

    pub fn mlp(y: &Array, x: &Array, w1: &Array, b1: &Array, w2: &Array, b2: &Array) -> Result<Array> {
        let h = linear(y, w1, b1.shape()[0] as usize, Some(b1), None, Act::Gelu)?;
        linear(&h, w2, b2.shape()[0] as usize, Some(b2), Some(x), Act::None)
    }

    /// q, k, v cut out of `qkv` with slices (views: an integer index in mlx-rs is a `take`,
    /// MLX's scalar gather), heads split, MLX's scaled_dot_product_attention, heads merged.
    pub fn multi_head_attention(qkv: &Array, heads: i32, causal: bool) -> Result<Array> {
        use mlx_rs::ops::indexing::TryIndexOp;
        let s = qkv.shape();
        if s.len() != 3 || heads <= 0 || s[2] % (3 * heads) != 0 {
            return Err(EngineError::InvalidInput(format!("attention: input {s:?} is not [B, L, 3 x {heads} heads]")));
        }
        let (b, l, w) = (s[0], s[1], s[2] / 3);
        let hd = w / heads;
        let qkv = qkv.reshape(&[b, l, 3, heads, hd])?;
        let part = |i: i32| -> Result<Array> {
            Ok(qkv.try_index((.., .., i..i + 1))?.reshape(&[b, l, heads, hd])?.transpose_axes(&[0, 2, 1, 3])?)
        };
        let scale = 1.0 / (hd as f32).sqrt();
        let mask = causal.then_some(mlx_rs::fast::ScaledDotProductAttentionMask::Causal);
        let att = mlx_rs::fast::scaled_dot_product_attention(&part(0)?, &part(1)?, &part(2)?, scale, mask, None)?;
        Ok(att.transpose_axes(&[0, 2, 1, 3])?.reshape(&[b, l, w])?)
    }

    /// MLX's grouped conv2d (groups = C): weight [k, k, C, m] -> MLX's [C * m, k, k, 1].
    pub fn depthwise(x: &Array, w: &Array, bias: Option<&Array>, stride: usize, a: Act) -> Result<Array> {
        let ws = w.shape();
        if ws.len() != 4 {
            return Err(EngineError::InvalidInput(format!("depthwise: weight {ws:?} is not [k, k, C, m]")));
        }
        let (k, c, m) = (ws[0], ws[2], ws[3]);
        let wm = w.reshape(&[k, k, c * m])?.transpose_axes(&[2, 0, 1])?.expand_dims(-1)?;
        let (s, p) = (stride as i32, k / 2);
        let y = mlx_rs::ops::conv2d(x, &wm, (s, s), (p, p), None, c)?;
        act(
            match bias {
                Some(b) => y.add(b)?,
                None => y,
            },
            a,
        )
    }

    /// MLX's conv2d: weight [k, k, Cin, O] -> MLX's [O, k, k, Cin].
    pub fn conv_small(x: &Array, w: &Array, bias: Option<&Array>, stride: usize, a: Act) -> Result<Array> {
        let k = w.shape()[0];
        let wm = w.transpose_axes(&[3, 0, 1, 2])?;
        let (s, p) = (stride as i32, k / 2);
        let y = mlx_rs::ops::conv2d(x, &wm, (s, s), (p, p), None, None)?;
        act(
            match bias {
                Some(b) => y.add(b)?,
                None => y,
            },
            a,
        )
    }
}

#[cfg(test)]
mod tests;
