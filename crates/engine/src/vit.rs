//! The ViT image towers of MobileCLIP2-B (timm `vit_base_mci_224`) and MobileCLIP2-L-14
//! (timm `vit_large_patch14_clip_224`), as open_clip wraps them (`visual.trunk.` keys, the timm
//! head is the projection). NHWC pixels in, unnormalised image features out.
//!
//! B:    conv stem 4x4/s4 + BN + GELU, 2x2/s2 + BN + GELU, 2x2/s2 (bias) -> 196 tokens;
//!       + pos_embed on the patch tokens only, THEN prepend cls; no pre-norm; LN eps 1e-6.
//! L-14: 14x14/s14 conv (no bias) -> 256 tokens; prepend cls, THEN + pos_embed on all 257;
//!       norm_pre; LN eps 1e-5.
//! Both: blocks x += proj(MHSA(norm1 x)); x += fc2(gelu(fc1(norm2 x))); final norm; class
//! token; head Linear.
//!
//! Every stem conv has kernel == stride and no padding, so it is a reshape into patches and
//! one GEMM (MLX's conv2d on CPU is slower and would gain nothing). The B stem BatchNorms are
//! folded into their GEMM weights at load (in f64, then rounded once to f32).

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::Array;

use crate::error::{EngineError, Result};
use crate::kernels::{self, Act};
use crate::nn::{EncoderBlock, Linear, Norm};
use crate::params::Params;
use crate::weights::{Inventory, Weights};

const PREFIX: &str = "visual.trunk.";
const BN_EPS: f64 = 1e-5;

/// One stem layer: a conv with kernel == stride, as [k*k*C_in, C_out] GEMM weights (rows in
/// (ky, kx, c) order, the order `patchify` produces) plus a bias.
struct PatchConv {
    k: i32,
    w: Array,
    b: Option<Array>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum StemKind {
    /// `vit_base_mci_224`'s ConvStem: (4, 3->192, BN, GELU), (2, 192->192, BN, GELU), (2, 192->W, bias).
    MciConvStem,
    /// One patch conv of `patch` x `patch`, no bias (CLIP ViTs).
    Patch(usize),
}

/// What differs between the two supported ViTs; everything is read from the timm name.
#[derive(Clone, Debug)]
pub struct VitSpec {
    pub timm_name: String,
    pub image_size: usize,
    pub width: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp: usize,
    stem: StemKind,
    /// LayerNorm eps (timm `vit_base_mci_224` uses 1e-6, the CLIP ViT torch's 1e-5).
    ln_eps: f32,
    /// `norm_pre` before the blocks (CLIP ViTs).
    pre_norm: bool,
    /// `no_embed_class`: pos_embed covers only the patch tokens and is added before the class
    /// token is prepended.
    no_embed_class: bool,
}

impl VitSpec {
    pub fn from_timm_name(name: &str) -> Option<VitSpec> {
        let spec = match name {
            "vit_base_mci_224" => VitSpec {
                timm_name: name.into(),
                image_size: 224,
                width: 768,
                depth: 12,
                heads: 12,
                mlp: 3072,
                stem: StemKind::MciConvStem,
                ln_eps: 1e-6,
                pre_norm: false,
                no_embed_class: true,
            },
            "vit_large_patch14_clip_224" => VitSpec {
                timm_name: name.into(),
                image_size: 224,
                width: 1024,
                depth: 24,
                heads: 16,
                mlp: 4096,
                stem: StemKind::Patch(14),
                ln_eps: 1e-5,
                pre_norm: true,
                no_embed_class: false,
            },
            _ => return None,
        };
        Some(spec)
    }

    fn stride(&self) -> usize {
        match self.stem {
            StemKind::MciConvStem => 16,
            StemKind::Patch(p) => p,
        }
    }

    fn grid(&self) -> usize {
        self.image_size / self.stride()
    }

    fn pos_tokens(&self) -> usize {
        let n = self.grid() * self.grid();
        if self.no_embed_class {
            n
        } else {
            n + 1
        }
    }
}

/// Every `visual.*` tensor of `spec` in the checkpoint, with its shape (`num_batches_tracked`
/// of the stem BatchNorms is optional: timm writes it, other exporters may not).
pub fn expected_keys(spec: &VitSpec, embed_dim: usize) -> Vec<(String, Vec<usize>)> {
    let (w, m) = (spec.width, spec.mlp);
    let mut keys: Vec<(String, Vec<usize>)> = Vec::new();
    let mut push = |k: String, s: Vec<usize>| keys.push((format!("{PREFIX}{k}"), s));
    push("cls_token".into(), vec![1, 1, w]);
    push("pos_embed".into(), vec![1, spec.pos_tokens(), w]);
    match spec.stem {
        StemKind::MciConvStem => {
            for (i, cin, cout, k) in [(0usize, 3usize, 192usize, 4usize), (1, 192, 192, 2)] {
                push(format!("patch_embed.backbone.{i}.conv.weight"), vec![cout, cin, k, k]);
                for s in ["weight", "bias", "running_mean", "running_var"] {
                    push(format!("patch_embed.backbone.{i}.bn.{s}"), vec![cout]);
                }
            }
            push("patch_embed.backbone.2.conv.weight".into(), vec![w, 192, 2, 2]);
            push("patch_embed.backbone.2.conv.bias".into(), vec![w]);
        }
        StemKind::Patch(p) => push("patch_embed.proj.weight".into(), vec![w, 3, p, p]),
    }
    if spec.pre_norm {
        push("norm_pre.weight".into(), vec![w]);
        push("norm_pre.bias".into(), vec![w]);
    }
    for i in 0..spec.depth {
        for (name, shape) in [
            ("norm1.weight", vec![w]),
            ("norm1.bias", vec![w]),
            ("attn.qkv.weight", vec![3 * w, w]),
            ("attn.qkv.bias", vec![3 * w]),
            ("attn.proj.weight", vec![w, w]),
            ("attn.proj.bias", vec![w]),
            ("norm2.weight", vec![w]),
            ("norm2.bias", vec![w]),
            ("mlp.fc1.weight", vec![m, w]),
            ("mlp.fc1.bias", vec![m]),
            ("mlp.fc2.weight", vec![w, m]),
            ("mlp.fc2.bias", vec![w]),
        ] {
            push(format!("blocks.{i}.{name}"), shape);
        }
    }
    push("norm.weight".into(), vec![w]);
    push("norm.bias".into(), vec![w]);
    push("head.weight".into(), vec![embed_dim, w]);
    push("head.bias".into(), vec![embed_dim]);
    keys
}

pub struct Vit {
    spec: VitSpec,
    stem: Vec<PatchConv>,
    cls_token: Array,
    pos_embed: Array,
    norm_pre: Option<Norm>,
    blocks: Vec<EncoderBlock>,
    norm: Norm,
    head: Linear,
}

/// Torch conv weight [O, I, k, k] (+ optional BatchNorm folded in) -> GEMM weight [k*k*I, O]
/// with rows in (ky, kx, i) order, and the bias.
fn gemm_conv(w: &[f32], o: usize, i: usize, k: usize, bn: Option<[&[f32]; 4]>, bias: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
    let mut scale = vec![1f64; o];
    let mut shift = vec![0f64; o];
    if let Some([g, b, mean, var]) = bn {
        for c in 0..o {
            let s = g[c] as f64 / (var[c] as f64 + BN_EPS).sqrt();
            scale[c] = s;
            shift[c] = b[c] as f64 - mean[c] as f64 * s;
        }
    }
    if let Some(bias) = bias {
        for c in 0..o {
            shift[c] += bias[c] as f64 * scale[c];
        }
    }
    let mut out = vec![0f32; k * k * i * o];
    for oc in 0..o {
        for ic in 0..i {
            for ky in 0..k {
                for kx in 0..k {
                    let v = w[((oc * i + ic) * k + ky) * k + kx] as f64 * scale[oc];
                    out[((ky * k + kx) * i + ic) * o + oc] = v as f32;
                }
            }
        }
    }
    (out, shift.into_iter().map(|v| v as f32).collect())
}

/// [N, H, W, C] -> [N, H/k, W/k, k*k*C], each patch flattened in (ky, kx, c) order.
fn patchify(x: &Array, k: i32) -> Result<Array> {
    let s = x.shape();
    let (n, h, w, c) = (s[0], s[1], s[2], s[3]);
    if h % k != 0 || w % k != 0 {
        return Err(EngineError::InvalidInput(format!("{h}x{w} input is not a multiple of the {k}x{k} patch")));
    }
    Ok(x.reshape(&[n, h / k, k, w / k, k, c])?.transpose_axes(&[0, 1, 3, 2, 4, 5])?.reshape(&[n, h / k, w / k, k * k * c])?)
}

fn inventory(spec: &VitSpec, embed_dim: usize) -> Inventory {
    Inventory::new(expected_keys(spec, embed_dim))
}

/// Header-only checks of a ViT tower's tensors (keys, shapes, float dtypes, no stray
/// `visual.*` key; the conv stem's int64 BatchNorm counters are tolerated, never read).
/// No tensor data is read.
pub fn check_header(weights: &Weights, spec: &VitSpec, embed_dim: usize) -> Result<()> {
    check(&inventory(spec, embed_dim), weights, spec)
}

fn check(inv: &Inventory, weights: &Weights, spec: &VitSpec) -> Result<()> {
    let hint = format!("the file does not match open_clip_config.json ({})", spec.timm_name);
    let counter = |k: &str| {
        spec.stem == StemKind::MciConvStem
            && k.starts_with(&format!("{PREFIX}patch_embed.backbone."))
            && k.ends_with(".bn.num_batches_tracked")
    };
    inv.check(weights, "visual.", "image", &hint, counter)
}

impl Vit {
    /// The tower from `p` (the model file or the weights cache). Shapes come from the
    /// inventory (`expected_keys`).
    pub fn load(p: &Params, spec: &VitSpec, embed_dim: usize) -> Result<Vit> {
        let weights = p.src();
        let inv = inventory(spec, embed_dim);
        check(&inv, weights, spec)?;
        let key = |k: &str| format!("{PREFIX}{k}");
        let shape = |k: &str| inv.shape(&key(k));
        let a = |k: &str| p.tensor(&key(k), shape(k)?);
        let v = |k: &str| weights.f32_vec(&key(k), shape(k)?);

        // Patch stem: each conv (+ BatchNorm or bias) folded into one GEMM over patches; the
        // folding (reading the file) runs only when building.
        let mut stem = Vec::new();
        let mut push_conv = |wkey: &str, bn: Option<String>, bias: Option<&str>| -> Result<()> {
            let (o, i, k) = match shape(wkey)? {
                [o, i, k, _] => (*o, *i, *k),
                s => return Err(EngineError::Model(format!("internal: {wkey} has shape {s:?}"))),
            };
            let cv = once_cell::unsync::OnceCell::new();
            let cv = || {
                cv.get_or_try_init(|| -> Result<(Vec<f32>, Vec<f32>)> {
                    let cw = v(wkey)?;
                    let bn: Option<Vec<Vec<f32>>> = match &bn {
                        Some(b) => Some(
                            ["weight", "bias", "running_mean", "running_var"]
                                .iter()
                                .map(|s| v(&format!("{b}.{s}")))
                                .collect::<Result<_>>()?,
                        ),
                        None => None,
                    };
                    let cb = bias.map(v).transpose()?;
                    Ok(gemm_conv(&cw, o, i, k, bn.as_ref().map(|b| [b[0].as_slice(), &b[1], &b[2], &b[3]]), cb.as_deref()))
                })
            };
            let w = p.one(&[k * k * i, o], || Ok(Array::from_slice(&cv()?.0, &[(k * k * i) as i32, o as i32])))?;
            let has_bias = bn.is_some() || bias.is_some();
            let b = if has_bias { Some(p.one(&[o], || Ok(Array::from_slice(&cv()?.1, &[o as i32])))?) } else { None };
            stem.push(PatchConv { k: k as i32, w, b });
            Ok(())
        };
        match spec.stem {
            StemKind::MciConvStem => {
                for i in 0..2 {
                    push_conv(&format!("patch_embed.backbone.{i}.conv.weight"), Some(format!("patch_embed.backbone.{i}.bn")), None)?;
                }
                push_conv("patch_embed.backbone.2.conv.weight", None, Some("patch_embed.backbone.2.conv.bias"))?;
            }
            StemKind::Patch(_) => push_conv("patch_embed.proj.weight", None, None)?,
        }

        let ln = |name: &str| -> Result<Norm> { Ok(Norm::layer(a(&format!("{name}.weight"))?, a(&format!("{name}.bias"))?, spec.ln_eps)) };
        let lin = |name: &str| -> Result<Linear> {
            let w = key(&format!("{name}.weight"));
            Linear::packed_from(p, &w, inv.shape(&w)?, &key(&format!("{name}.bias")))
        };
        let mut blocks = Vec::with_capacity(spec.depth);
        for i in 0..spec.depth {
            let b = |name: &str| format!("blocks.{i}.{name}");
            blocks.push(EncoderBlock {
                norm1: ln(&b("norm1"))?,
                qkv: lin(&b("attn.qkv"))?,
                proj: lin(&b("attn.proj"))?,
                norm2: ln(&b("norm2"))?,
                fc1: lin(&b("mlp.fc1"))?,
                fc2: lin(&b("mlp.fc2"))?,
            });
        }
        Ok(Vit {
            spec: spec.clone(),
            stem,
            cls_token: a("cls_token")?,
            pos_embed: a("pos_embed")?,
            norm_pre: if spec.pre_norm { Some(ln("norm_pre")?) } else { None },
            blocks,
            norm: ln("norm")?,
            head: lin("head")?,
        })
    }

    /// An upper bound of the memory a forward pass over `n` images needs beyond the weights
    /// (footprint.rs).
    pub fn activation_bytes(&self, n: usize) -> usize {
        let s = &self.spec;
        let stem_width = match s.stem {
            StemKind::MciConvStem => 192,
            StemKind::Patch(_) => 0,
        };
        let tokens = s.grid() * s.grid() + 1;
        let blocks = crate::footprint::Blocks { tokens, width: s.width, mlp: s.mlp, heads: s.heads };
        crate::footprint::vit(n, s.image_size, stem_width, &blocks, crate::kernels::threads())
    }

    /// `x`: [N, S, S, 3] normalised pixels (NHWC). Returns [N, embed_dim], not normalised.
    /// Calls `tap` after the stem and after each block with the graph so far (a tap that
    /// evaluates runs it in those pieces: VisionTower::forward_checked).
    pub(crate) fn run(&self, x: &Array, tap: &mut dyn FnMut(&str, &Array) -> Result<()>) -> Result<Array> {
        let s = x.shape();
        let size = self.spec.image_size as i32;
        if s.len() != 4 || s[1] != size || s[2] != size || s[3] != 3 || s[0] == 0 {
            return Err(EngineError::InvalidInput(format!("pixels of shape {s:?}, expected [N, {size}, {size}, 3]")));
        }
        let n = s[0];
        let w = self.spec.width as i32;
        let last = self.stem.len() - 1;
        let mut h = x.clone();
        for (i, conv) in self.stem.iter().enumerate() {
            h = patchify(&h, conv.k)?.matmul(&conv.w)?;
            let act = if i < last { Act::Gelu } else { Act::None };
            if conv.b.is_some() || act != Act::None {
                h = kernels::epilogue(&h, None, conv.b.as_ref(), None, act)?;
            }
        }
        let grid = self.spec.grid() as i32;
        let mut tokens = h.reshape(&[n, grid * grid, w])?;
        let cls = mlx_rs::ops::broadcast_to(&self.cls_token, &[n, 1, w])?;
        if self.spec.no_embed_class {
            tokens = tokens.add(&self.pos_embed)?;
            tokens = mlx_rs::ops::concatenate(&[cls, tokens], 1)?;
        } else {
            tokens = mlx_rs::ops::concatenate(&[cls, tokens], 1)?;
            tokens = tokens.add(&self.pos_embed)?;
        }
        if let Some(norm) = &self.norm_pre {
            tokens = norm.forward(&tokens)?;
        }
        let heads = self.spec.heads as i32;
        tap("stem", &tokens)?;
        for blk in &self.blocks {
            tokens = blk.forward(&tokens, heads, false)?;
            tap("block", &tokens)?;
        }
        // The final LayerNorm is per token: normalising only the class token is the same.
        let cls = tokens.try_index((.., 0, ..))?;
        self.head.forward(&self.norm.forward(&cls)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The patch GEMM equals MLX's own conv2d (stride = kernel, no padding) with the BN folded.
    #[test]
    fn patch_gemm_equals_conv2d_with_batchnorm() {
        crate::runtime::init(Default::default()).unwrap();
        let (n, hw, cin, cout, k) = (2usize, 8usize, 3usize, 5usize, 4usize);
        let xv = crate::random_model::uniform(n * hw * hw * cin, 1);
        let wv = crate::random_model::uniform(cout * cin * k * k, 2);
        let g: Vec<f32> = crate::random_model::uniform(cout, 3).iter().map(|u| 1.0 + 0.5 * u).collect();
        let b = crate::random_model::uniform(cout, 4);
        let mean = crate::random_model::uniform(cout, 5);
        let var: Vec<f32> = crate::random_model::uniform(cout, 6).iter().map(|u| 1.0 + 0.5 * u).collect();
        let x = Array::from_slice(&xv, &[n as i32, hw as i32, hw as i32, cin as i32]);
        let (gw, gb) = gemm_conv(&wv, cout, cin, k, Some([&g, &b, &mean, &var]), None);
        let ours = patchify(&x, k as i32)
            .unwrap()
            .matmul(Array::from_slice(&gw, &[(k * k * cin) as i32, cout as i32]))
            .unwrap()
            .add(Array::from_slice(&gb, &[cout as i32]))
            .unwrap();
        // MLX conv2d wants weights [O, kh, kw, I].
        let wt = Array::from_slice(&wv, &[cout as i32, cin as i32, k as i32, k as i32]).transpose_axes(&[0, 2, 3, 1]).unwrap();
        let conv = mlx_rs::ops::conv2d(&x, &wt, (k as i32, k as i32), (0, 0), (1, 1), 1).unwrap();
        let bn = |v: &Vec<f32>| Array::from_slice(v, &[cout as i32]);
        let want = conv
            .subtract(bn(&mean))
            .unwrap()
            .divide(bn(&var).add(Array::from_f32(1e-5)).unwrap().sqrt().unwrap())
            .unwrap()
            .multiply(bn(&g))
            .unwrap()
            .add(bn(&b))
            .unwrap();
        let d: f32 = ours.subtract(&want).unwrap().abs().unwrap().max(None).unwrap().try_item_exact::<f32>().unwrap();
        assert_eq!(ours.shape(), want.shape());
        assert!(d < 1e-5, "max abs diff {d}");
    }

    #[test]
    fn knows_both_vits_and_their_key_counts() {
        let b = VitSpec::from_timm_name("vit_base_mci_224").unwrap();
        // keys_B.tsv has 164 visual.* keys, 2 of them num_batches_tracked; keys_L-14.tsv 297.
        assert_eq!(expected_keys(&b, 512).len() + 2, 164);
        let l = VitSpec::from_timm_name("vit_large_patch14_clip_224").unwrap();
        assert_eq!(expected_keys(&l, 768).len(), 297);
        assert!(VitSpec::from_timm_name("vit_huge_patch14_clip_224").is_none());
    }
}
