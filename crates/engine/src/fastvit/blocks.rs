//! Inference-form FastViT blocks on MLX (NHWC), built from reparameterized host kernels.
//!
//! Folds done here beyond timm's `reparameterize_model` (all exact algebra, f64 on the host):
//! - ConvMlp: the 7x7 depthwise conv's BatchNorm goes into the conv (kernel and a new bias);
//! - layer scales: gamma_2 (and gamma_1 of attention blocks) multiply the rows and bias of the
//!   branch's last linear map (ConvMlp fc2, attention proj), so no separate multiply runs;
//! - attention-block BatchNorm (MCi0/2): BN(x) = s*x + t is affine per channel and feeds only
//!   the bias-free qkv Linear, so qkv(BN(x)) = (W diag s) x + W t: one Linear with bias.
//!   The LayerNorm2d of MCi3/4 normalises per pixel and stays a LayerNorm.

use mlx_rs::Array;

use super::modules::{Module, Plan};
use super::reparam::ConvKernel;
use super::spec::{AttnNorm, HEAD_DIM, NORM_EPS};
use crate::conv;
use crate::error::{EngineError, Result};
use crate::kernels::{self, Act};
use crate::nn::{Linear, Norm};
use crate::params::Params;

fn arr(v: &[f32], shape: &[usize]) -> Array {
    Array::from_slice(v, &shape.iter().map(|&d| d as i32).collect::<Vec<_>>())
}

/// A value computed at most once, on first use: a reparameterized kernel feeds two arrays
/// (weight and bias) and is computed only when building (never when loading from the cache).
type Memo<T> = once_cell::unsync::OnceCell<T>;

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn bad(what: String) -> EngineError {
    EngineError::Model(format!("FastViT: {what}"))
}

/// Depthwise conv (channel multiplier m = out / in), with bias.
pub struct Dw {
    w: Array,
    b: Array,
    stride: usize,
}

impl Dw {
    /// From a computed kernel (tests).
    #[cfg(test)]
    pub fn new(kern: &ConvKernel, cin: usize, stride: usize) -> Result<Dw> {
        if kern.cin_g != 1 || cin == 0 || !kern.out.is_multiple_of(cin) {
            return Err(bad(format!("kernel {}x{} is not depthwise over {cin} channels", kern.out, kern.cin_g)));
        }
        let w = conv::depthwise_taps(&kern.w_f32(), cin, kern.out / cin, kern.k)?;
        Ok(Dw { w, b: arr(&kern.b_f32(), &[kern.out]), stride })
    }

    /// A depthwise conv of `out` channels over `cin`, k x k, whose kernel `make` computes
    /// (called at most once, and only when building).
    pub fn load(
        p: &Params,
        (out, cin_g, k): (usize, usize, usize),
        cin: usize,
        stride: usize,
        make: impl Fn() -> Result<ConvKernel>,
    ) -> Result<Dw> {
        if cin_g != 1 || cin == 0 || !out.is_multiple_of(cin) {
            return Err(bad(format!("kernel {out}x{cin_g} is not depthwise over {cin} channels")));
        }
        let memo = Memo::new();
        let kern = || memo.get_or_try_init(&make);
        let w = p.one(&[k, k, cin, out / cin], || conv::depthwise_taps(&kern()?.w_f32(), cin, out / cin, k))?;
        let b = p.one(&[out], || Ok(arr(&kern()?.b_f32(), &[out])))?;
        Ok(Dw { w, b, stride })
    }

    /// The depthwise conv of a reparameterizable module.
    pub fn module(p: &Params, plan: &Plan, m: &Module, cin: usize, stride: usize) -> Result<Dw> {
        Dw::load(p, m.kernel_shape()?, cin, stride, || plan.kernel(p.src(), m))
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        self.forward_act(x, Act::None)
    }

    pub fn forward_act(&self, x: &Array, act: Act) -> Result<Array> {
        kernels::depthwise(x, &self.w, Some(&self.b), self.stride, act)
    }
}

/// The 1x1 full conv of a reparameterizable module as a Linear.
pub fn pointwise(p: &Params, plan: &Plan, m: &Module) -> Result<Linear> {
    let (out, cin, k) = m.kernel_shape()?;
    if k != 1 {
        return Err(bad(format!("expected a 1x1 kernel, got {k}x{k}")));
    }
    let kern = Memo::new();
    let kern = || kern.get_or_try_init(|| plan.kernel(p.src(), m));
    Ok(Linear::packed(p.packed(out, cin, || Ok(kern()?.w_f32()))?, out, Some(p.one(&[out], || Ok(arr(&kern()?.b_f32(), &[out])))?)))
}

/// Dense k x k conv (stem.0, 3 input channels) as a direct conv kernel.
pub struct Dense {
    w: Array,
    b: Array,
    stride: usize,
}

impl Dense {
    /// The dense conv of a reparameterizable module.
    pub fn module(p: &Params, plan: &Plan, m: &Module, stride: usize) -> Result<Dense> {
        let (o, c, k) = m.kernel_shape()?;
        let kern = Memo::new();
        let kern = || kern.get_or_try_init(|| plan.kernel(p.src(), m));
        // [k*k*C, O] in (tap, c) order is [k, k, C, O]
        let w = p.one(&[k * k * c, o], || conv::dense_im2col(&kern()?.w_f32(), o, c, k))?;
        let b = p.one(&[o], || Ok(arr(&kern()?.b_f32(), &[o])))?;
        Ok(Dense { w: w.reshape(&[k as i32, k as i32, c as i32, o as i32])?, b, stride })
    }

    pub fn forward(&self, x: &Array, act: Act) -> Result<Array> {
        kernels::conv_small(x, &self.w, Some(&self.b), self.stride, act)
    }
}

/// Squeeze-excite (timm SEModule): mean over H, W; fc1 + ReLU; fc2; sigmoid gate.
pub struct Se {
    fc1: Linear,
    fc2: Linear,
}

impl Se {
    pub fn load(plan: &Plan, ps: &Params, p: &str) -> Result<Se> {
        let w = ps.src();
        let lin = |name: &str| -> Result<Linear> {
            let key = format!("{p}.{name}.weight");
            let s = plan.shape(&key)?.to_vec();
            Linear::from_torch(
                ps.one(&s[..2], || Ok(arr(&plan.vec(w, &key)?, &s[..2])))?,
                Some(ps.one(&s[..1], || Ok(arr(&plan.vec(w, &format!("{p}.{name}.bias"))?, &s[..1])))?),
            )
        };
        Ok(Se { fc1: lin("fc1")?, fc2: lin("fc2")? })
    }

    /// The per-image channel gate [N, C] of `x` [N, H, W, C] (tiny: MLX ops).
    pub fn gate(&self, x: &Array) -> Result<Array> {
        let s = x.mean_axes(&[1, 2], false)?;
        let s = mlx_rs::ops::maximum(&self.fc1.forward(&s)?, Array::from_f32(0.0))?;
        Ok(mlx_rs::ops::sigmoid(&self.fc2.forward(&s)?)?)
    }

    /// act(x * gate(x)) in one kernel pass.
    pub fn forward_act(&self, x: &Array, act: Act) -> Result<Array> {
        let g = self.gate(x)?;
        kernels::epilogue(x, Some(&g), None, None, act)
    }
}

/// Reads `key` (shape [rows, cols, 1, 1] or [rows, cols]) and its bias, each row o scaled by
/// `gamma[o]` (in f64) when given: the weight packed for the kernel GEMM, and the bias.
fn scaled_packed(plan: &Plan, p: &Params, wkey: &str, bkey: &str, gamma_key: Option<&str>) -> Result<(Array, Array)> {
    let s = plan.shape(wkey)?.to_vec();
    let (rows, cols) = (s[0], s[1]);
    let w = p.src();
    let scaled = Memo::new();
    let scaled = || {
        scaled.get_or_try_init(|| -> Result<(Vec<f32>, Vec<f32>)> {
            let mut wv = plan.vec(w, wkey)?;
            let mut bv = plan.vec(w, bkey)?;
            if let Some(gk) = gamma_key {
                let g = plan.vec(w, gk)?;
                for o in 0..rows {
                    let go = g[o] as f64;
                    wv[o * cols..(o + 1) * cols].iter_mut().for_each(|v| *v = (*v as f64 * go) as f32);
                    bv[o] = (bv[o] as f64 * go) as f32;
                }
            }
            Ok((wv, bv))
        })
    };
    Ok((p.packed(rows, cols, || Ok(scaled()?.0.clone()))?, p.one(&[rows], || Ok(arr(&scaled()?.1, &[rows])))?))
}

/// [`scaled_packed`] as a fused-GEMM layer.
fn scaled_linear(plan: &Plan, p: &Params, wkey: &str, bkey: &str, gamma_key: Option<&str>) -> Result<Linear> {
    let (w, b) = scaled_packed(plan, p, wkey, bkey, gamma_key)?;
    let n = plan.shape(wkey)?[0];
    Ok(Linear::packed(w, n, Some(b)))
}

/// ConvMlp with its BN folded into the 7x7 conv and the block's layer scale into fc2.
pub struct Mlp {
    conv: Dw,
    /// fc1 and fc2 (layer scale folded in): packed weight and bias each.
    fc1: (Array, Array),
    fc2: (Array, Array),
}

impl Mlp {
    /// `b`: the block prefix; `gamma_key`: the layer scale that multiplies this branch.
    pub fn load(plan: &Plan, p: &Params, b: &str, dim: usize, gamma_key: &str) -> Result<Mlp> {
        let w = p.src();
        let ck = format!("{b}.mlp.conv.conv.weight");
        let s = plan.shape(&ck)?.to_vec();
        let conv = Dw::load(p, (s[0], s[1], s[2]), dim, 1, || {
            ConvKernel::conv_bn(&plan.vec(w, &ck)?, &plan.bn(w, &format!("{b}.mlp.conv.bn"))?, 1, s[2])
        })?;
        Ok(Mlp {
            conv,
            fc1: scaled_packed(plan, p, &format!("{b}.mlp.fc1.weight"), &format!("{b}.mlp.fc1.bias"), None)?,
            fc2: scaled_packed(plan, p, &format!("{b}.mlp.fc2.weight"), &format!("{b}.mlp.fc2.bias"), Some(gamma_key))?,
        })
    }

    /// x + gamma * ConvMlp(x); the per-pixel part (fc1, GELU, fc2, residual) is one kernel
    /// that keeps the hidden activations in cache, block of rows by block of rows.
    pub fn residual(&self, x: &Array) -> Result<Array> {
        let ((w1, b1), (w2, b2)) = (&self.fc1, &self.fc2);
        kernels::mlp(&self.conv.forward(x)?, x, w1, b1, w2, b2)
    }
}

pub enum Block {
    /// x = mixer(x) (RepMixer with its residual inside); x += gamma * ConvMlp(x).
    RepMixer { mixer: Dw, mlp: Mlp },
    /// x += gamma_1 * Attn(norm(x)); x += gamma_2 * ConvMlp(x).
    Attention { ln: Option<Norm>, qkv: Linear, proj: Linear, heads: i32, mlp: Mlp },
}

impl Block {
    pub fn load_repmixer(plan: &Plan, p: &Params, mixer: &Module, b: &str, dim: usize) -> Result<Block> {
        Ok(Block::RepMixer {
            mixer: Dw::module(p, plan, mixer, dim, 1)?,
            mlp: Mlp::load(plan, p, b, dim, &format!("{b}.layer_scale.gamma"))?,
        })
    }

    pub fn load_attention(plan: &Plan, p: &Params, b: &str, dim: usize, norm: AttnNorm) -> Result<Block> {
        if !dim.is_multiple_of(HEAD_DIM) {
            return Err(bad(format!("{b}: width {dim} is not a multiple of the head dim {HEAD_DIM}")));
        }
        let w = p.src();
        let qkv_key = format!("{b}.token_mixer.qkv.weight");
        let (qkv, ln) = match norm {
            AttnNorm::BatchNorm => {
                let folded = Memo::new();
                let folded = || {
                    folded.get_or_try_init(|| -> Result<(Vec<f32>, Vec<f32>)> {
                        let qkv_w = plan.vec(w, &qkv_key)?;
                        let (s, t) = plan.bn(w, &format!("{b}.norm"))?.scale_shift();
                        let mut wf = vec![0f32; 3 * dim * dim];
                        let mut bias = vec![0f64; 3 * dim];
                        for o in 0..3 * dim {
                            for c in 0..dim {
                                let v = qkv_w[o * dim + c] as f64;
                                wf[o * dim + c] = (v * s[c]) as f32;
                                bias[o] += v * t[c];
                            }
                        }
                        Ok((wf, f32s(&bias)))
                    })
                };
                let qw = p.packed(3 * dim, dim, || Ok(folded()?.0.clone()))?;
                let qb = p.one(&[3 * dim], || Ok(arr(&folded()?.1, &[3 * dim])))?;
                (Linear::packed(qw, 3 * dim, Some(qb)), None)
            }
            AttnNorm::LayerNorm => (
                Linear::packed(p.packed(3 * dim, dim, || plan.vec(w, &qkv_key))?, 3 * dim, None),
                Some(Norm::layer(
                    p.one(&[dim], || Ok(arr(&plan.vec(w, &format!("{b}.norm.weight"))?, &[dim])))?,
                    p.one(&[dim], || Ok(arr(&plan.vec(w, &format!("{b}.norm.bias"))?, &[dim])))?,
                    NORM_EPS,
                )),
            ),
        };
        let g1 = format!("{b}.layer_scale_1.gamma");
        Ok(Block::Attention {
            ln,
            qkv,
            proj: scaled_linear(plan, p, &format!("{b}.token_mixer.proj.weight"), &format!("{b}.token_mixer.proj.bias"), Some(&g1))?,
            heads: (dim / HEAD_DIM) as i32,
            mlp: Mlp::load(plan, p, b, dim, &format!("{b}.layer_scale_2.gamma"))?,
        })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            Block::RepMixer { mixer, mlp } => mlp.residual(&mixer.forward(x)?),
            Block::Attention { ln, qkv, proj, heads, mlp } => {
                let s = x.shape();
                let (n, h, wd, c) = (s[0], s[1], s[2], s[3]);
                let l = h * wd;
                let t = x.reshape(&[n, l, c])?;
                let t = match ln {
                    Some(norm) => norm.forward(&t)?,
                    None => t,
                };
                let att = kernels::multi_head_attention(&qkv.forward(&t)?, *heads, false)?;
                let x = proj.forward_with(&att, Act::None, Some(&x.reshape(&[n, l, c])?))?.reshape(&[n, h, wd, c])?;
                mlp.residual(&x)
            }
        }
    }
}

/// PatchEmbed: ReparamLargeKernelConv 7x7 stride 2 (channel multiplier 2) + SE? + GELU, then
/// MobileOne 1x1 + GELU.
pub struct Downsample {
    lk: Dw,
    se: Option<Se>,
    pw: Linear,
}

impl Downsample {
    pub fn load(plan: &Plan, p: &Params, lk: &Module, pw: &Module, cin: usize, has_se: bool) -> Result<Downsample> {
        Ok(Downsample {
            lk: Dw::module(p, plan, lk, cin, 2)?,
            se: if has_se { Some(Se::load(plan, p, &format!("{}.se", lk.prefix))?) } else { None },
            pw: pointwise(p, plan, pw)?,
        })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let y = match &self.se {
            Some(se) => se.forward_act(&self.lk.forward(x)?, Act::Gelu)?,
            None => self.lk.forward_act(x, Act::Gelu)?,
        };
        pointwise_gelu(&y, &self.pw)
    }
}

/// Stem: MobileOne 3x3 s2 dense, 3x3 s2 depthwise, 1x1; GELU after each.
pub struct Stem {
    c0: Dense,
    c1: Dw,
    c2: Linear,
}

impl Stem {
    pub fn load(plan: &Plan, p: &Params, m: [&Module; 3], c0: usize) -> Result<Stem> {
        Ok(Stem { c0: Dense::module(p, plan, m[0], 2)?, c1: Dw::module(p, plan, m[1], c0, 2)?, c2: pointwise(p, plan, m[2])? })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let x = self.c0.forward(x, Act::Gelu)?;
        pointwise_gelu(&self.c1.forward_act(&x, Act::Gelu)?, &self.c2)
    }
}

/// final_conv (MobileOne 3x3 depthwise, multiplier 2, SE, GELU), global average pool, head.fc.
pub struct Head {
    conv: Dw,
    se: Se,
    fc: Linear,
}

impl Head {
    pub fn load(plan: &Plan, p: &Params, final_conv: &Module, cin: usize, head_prefix: &str) -> Result<Head> {
        Ok(Head {
            conv: Dw::module(p, plan, final_conv, cin, 1)?,
            se: Se::load(plan, p, &format!("{}.se", final_conv.prefix))?,
            fc: scaled_linear(plan, p, &format!("{head_prefix}.fc.weight"), &format!("{head_prefix}.fc.bias"), None)?,
        })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let y = self.se.forward_act(&self.conv.forward(x)?, Act::Gelu)?;
        self.fc.forward(&y.mean_axes(&[1, 2], false)?)
    }
}

/// gelu(pw(y)) over pixels (y already activated by the conv kernel before it): one fused GEMM.
fn pointwise_gelu(y: &Array, pw: &Linear) -> Result<Array> {
    let s = y.shape().to_vec();
    let out = pw.forward_with(&y.reshape(&[s[0] * s[1] * s[2], s[3]])?, Act::Gelu, None)?;
    let o = out.shape()[1];
    Ok(out.reshape(&[s[0], s[1], s[2], o])?)
}

/// Depthwise conv of a reparameterizable module (RepCPE, RepMixer) as a standalone layer.
pub fn dw_module(plan: &Plan, p: &Params, m: &Module, cin: usize, stride: usize) -> Result<Dw> {
    Dw::module(p, plan, m, cin, stride)
}
