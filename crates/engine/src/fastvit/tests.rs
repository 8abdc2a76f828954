//! Each reparameterized block against a straightforward training-form forward (MLX's own
//! grouped `conv2d`, explicit BatchNorm, exact erf GELU, explicit softmax attention) on random
//! weights with random BatchNorm statistics; key inventory against the reference facts; form
//! detection and load errors.

use std::collections::HashMap;
use std::path::PathBuf;

use mlx_rs::Array;
use safetensors::tensor::{Dtype, TensorView};

use super::blocks::{self, Block, Downsample, Dw, Head, Se};
use super::modules::{Form, Key, Kind, Module, Plan};
use super::spec::AttnNorm;
use super::*;
use crate::conv;
use crate::nn;
use crate::params::Params;
use crate::random_model::{uniform, write_safetensors, InitRow};

const TOL: f32 = 1e-5;

/// Random init by key: norm weights / running_var U(0.5, 1.5), biases / means U(-0.2, 0.2),
/// conv / linear weights U(+-sqrt(3 / fan_in)) (unit variance outputs), layer scales
/// U(0.2, 0.8) so that every branch shows in the output.
fn init_row(key: &str, shape: &[usize]) -> InitRow {
    let (dtype, offset, scale) = if key.ends_with(".num_batches_tracked") {
        ("int64", 0.0, 0.0)
    } else if key.ends_with("running_var") || (key.ends_with(".weight") && shape.len() == 1) {
        ("float32", 1.0, 0.5)
    } else if key.ends_with("gamma") {
        ("float32", 0.5, 0.3)
    } else if shape.len() >= 2 {
        ("float32", 0.0, (3.0 / shape[1..].iter().product::<usize>() as f32).sqrt())
    } else {
        ("float32", 0.0, 0.2)
    };
    InitRow { key: key.into(), shape: shape.to_vec(), dtype: dtype.into(), offset, scale }
}

struct Ctx {
    path: PathBuf,
    w: Weights,
    shapes: HashMap<String, Vec<usize>>,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        std::fs::remove_file(&self.path).ok();
    }
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("fastvit-unit-{name}-{}.safetensors", std::process::id()))
}

/// A safetensors file with the training-form tensors of `mods`.
fn ctx(name: &str, mods: &[Module]) -> Ctx {
    crate::runtime::init(Default::default()).unwrap();
    let keys: Vec<Key> = mods.iter().flat_map(|m| m.keys(Form::Training)).collect();
    let rows: Vec<InitRow> = keys.iter().map(|(k, s)| init_row(k, s)).collect();
    let path = tmp(name);
    write_safetensors(&path, &rows, |_| true).unwrap();
    let w = Weights::open(&path).unwrap();
    Ctx { path, w, shapes: keys.into_iter().collect() }
}

fn input(shape: &[usize], seed: u64) -> Array {
    let n = shape.iter().product();
    Array::from_slice(&uniform(n, seed), &shape.iter().map(|&d| d as i32).collect::<Vec<_>>())
}

fn max_diff(a: &Array, b: &Array) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let d = a.subtract(b).unwrap().abs().unwrap().max(None).unwrap();
    d.eval().unwrap();
    d.try_item_exact::<f32>().unwrap()
}

fn max_abs(a: &Array) -> f32 {
    a.abs().unwrap().max(None).unwrap().try_item_exact::<f32>().unwrap()
}

fn gelu_exact(x: &Array) -> Array {
    let e = mlx_rs::ops::erf(x.multiply(Array::from_f32(std::f32::consts::FRAC_1_SQRT_2)).unwrap()).unwrap();
    x.multiply(e.add(Array::from_f32(1.0)).unwrap()).unwrap().multiply(Array::from_f32(0.5)).unwrap()
}

/// Training-form reference ops, reading the raw tensors.
impl Ctx {
    fn a(&self, key: &str) -> Array {
        self.w.array(key, &self.shapes[key]).unwrap()
    }

    /// PyTorch conv2d (weight [O, C/g, k, k], padding k/2) with MLX's grouped conv.
    fn conv(&self, x: &Array, wkey: &str, stride: i32, groups: i32) -> Array {
        let w = self.a(wkey);
        let k = w.shape()[2];
        let w = w.transpose_axes(&[0, 2, 3, 1]).unwrap();
        mlx_rs::ops::conv2d(x, &w, (stride, stride), (k / 2, k / 2), None, groups).unwrap()
    }

    fn bn(&self, x: &Array, p: &str) -> Array {
        let (g, b, m, v) = (
            self.a(&format!("{p}.weight")),
            self.a(&format!("{p}.bias")),
            self.a(&format!("{p}.running_mean")),
            self.a(&format!("{p}.running_var")),
        );
        let std = v.add(Array::from_f32(1e-5)).unwrap().sqrt().unwrap();
        x.subtract(&m).unwrap().divide(&std).unwrap().multiply(&g).unwrap().add(&b).unwrap()
    }

    fn conv_bn(&self, x: &Array, p: &str, stride: i32, groups: i32) -> Array {
        self.bn(&self.conv(x, &format!("{p}.conv.weight"), stride, groups), &format!("{p}.bn"))
    }

    fn conv_bias(&self, x: &Array, p: &str, groups: i32) -> Array {
        self.conv(x, &format!("{p}.weight"), 1, groups).add(self.a(&format!("{p}.bias"))).unwrap()
    }

    fn se(&self, x: &Array, p: &str) -> Array {
        let s = x.mean_axes(&[1, 2], true).unwrap();
        let s = mlx_rs::ops::maximum(self.conv_bias(&s, &format!("{p}.fc1"), 1), Array::from_f32(0.0)).unwrap();
        let g = mlx_rs::ops::sigmoid(self.conv_bias(&s, &format!("{p}.fc2"), 1)).unwrap();
        x.multiply(&g).unwrap()
    }

    fn gamma(&self, key: &str) -> Array {
        let g = self.a(key);
        let c = g.shape()[0];
        g.reshape(&[c]).unwrap()
    }

    /// MobileOneBlock training forward (before SE / act).
    fn mobileone(&self, x: &Array, m: &Module) -> Array {
        let Kind::MobileOne { cin, cout, stride, depthwise, scale, .. } = m.kind else { panic!() };
        let p = &m.prefix;
        let g = if depthwise { cin as i32 } else { 1 };
        let mut out = self.conv_bn(x, &format!("{p}.conv_kxk.0"), stride as i32, g);
        if scale {
            out = out.add(self.conv_bn(x, &format!("{p}.conv_scale"), stride as i32, g)).unwrap();
        }
        if cin == cout && stride == 1 {
            out = out.add(self.bn(x, &format!("{p}.identity"))).unwrap();
        }
        out
    }

    fn mlp(&self, x: &Array, b: &str, dim: i32) -> Array {
        let y = self.conv_bn(x, &format!("{b}.mlp.conv"), 1, dim);
        let h = gelu_exact(&self.conv_bias(&y, &format!("{b}.mlp.fc1"), 1));
        self.conv_bias(&h, &format!("{b}.mlp.fc2"), 1)
    }
}

#[allow(clippy::too_many_arguments)]
fn mobileone(p: &str, cin: usize, cout: usize, k: usize, stride: usize, depthwise: bool, scale: bool, se: Option<usize>) -> Module {
    Module { prefix: format!("visual.trunk.{p}"), kind: Kind::MobileOne { cin, cout, k, stride, depthwise, scale, se } }
}

fn plain(p: &str, keys: Vec<Key>) -> Module {
    Module { prefix: format!("visual.trunk.{p}"), kind: Kind::Plain(keys) }
}

fn key(name: &str, s: &[usize]) -> Key {
    (name.to_string(), s.to_vec())
}

fn bn_rel(p: &str, c: usize) -> Vec<Key> {
    ["weight", "bias", "running_mean", "running_var"].iter().map(|n| key(&format!("{p}.{n}"), &[c])).collect()
}

fn mlp_rel(dim: usize, hidden: usize) -> Vec<Key> {
    let mut v = vec![key("mlp.conv.conv.weight", &[dim, 1, 7, 7])];
    v.extend(bn_rel("mlp.conv.bn", dim));
    v.extend([
        key("mlp.fc1.weight", &[hidden, dim, 1, 1]),
        key("mlp.fc1.bias", &[hidden]),
        key("mlp.fc2.weight", &[dim, hidden, 1, 1]),
        key("mlp.fc2.bias", &[dim]),
    ]);
    v
}

/// MobileOneBlock in every configuration the MCi models use (and a full-conv identity case),
/// reparameterized, against the multi-branch form, with SE and GELU where the model has them.
#[test]
fn mobileone_blocks_match_training_form() {
    #[allow(clippy::type_complexity)]
    let cases: Vec<(Module, [usize; 3])> = vec![
        (mobileone("stem.0", 3, 16, 3, 2, false, true, None), [13, 12, 3]), // dense s2 + scale
        (mobileone("stem.0n", 3, 16, 3, 2, false, false, None), [12, 12, 3]), // MCi3/4 stem.0
        (mobileone("stem.1", 16, 16, 3, 2, true, true, None), [12, 11, 16]), // depthwise s2 + scale
        (mobileone("stem.2", 16, 16, 1, 1, false, false, None), [6, 6, 16]), // 1x1 + identity
        (mobileone("dense.id", 8, 8, 3, 1, false, true, None), [6, 7, 8]),  // full 3x3 + scale + identity
        (mobileone("dw.id", 8, 8, 3, 1, true, true, None), [6, 7, 8]),      // depthwise + scale + identity
        (mobileone("final_conv", 16, 32, 3, 1, true, true, Some(4)), [5, 5, 16]), // multiplier 2 + SE
    ];
    for (i, (m, [h, w, c])) in cases.into_iter().enumerate() {
        let cx = ctx(&format!("mobileone{i}"), std::slice::from_ref(&m));
        let plan = Plan::new(&cx.w, std::slice::from_ref(&m)).unwrap();
        let kern = plan.kernel(&cx.w, &m).unwrap();
        let Kind::MobileOne { cin, stride, depthwise, k, se, .. } = m.kind else { unreachable!() };
        let x = input(&[2, h, w, c], 40 + i as u64);
        let mut got = if depthwise {
            Dw::new(&kern, cin, stride).unwrap().forward(&x).unwrap()
        } else if k == 1 {
            conv::pointwise(&x, &blocks::pointwise(&Params::build(&cx.w), &plan, &m).unwrap()).unwrap()
        } else {
            blocks::Dense::module(&Params::build(&cx.w), &plan, &m, stride).unwrap().forward(&x, crate::kernels::Act::None).unwrap()
        };
        let mut want = cx.mobileone(&x, &m);
        if se.is_some() {
            let p = format!("{}.se", m.prefix);
            got = Se::load(&plan, &Params::build(&cx.w), &p).unwrap().forward_act(&got, crate::kernels::Act::None).unwrap();
            want = cx.se(&want, &p);
        }
        let (got, want) = (nn::gelu(&got).unwrap(), gelu_exact(&want));
        let d = max_diff(&got, &want);
        assert!(d <= TOL, "{}: max abs diff {d} (scale {})", m.prefix, max_abs(&want));
    }
}

/// PatchEmbed: ReparamLargeKernelConv (7x7 + 3x3, stride 2, multiplier 2), with and without
/// SE, + GELU, then MobileOne 1x1 with identity + GELU.
#[test]
fn downsample_matches_training_form() {
    for (i, se) in [None, Some(4)].into_iter().enumerate() {
        let (cin, cout) = (8, 16);
        let lk = Module { prefix: format!("visual.trunk.d{i}.proj.0"), kind: Kind::LargeKernel { cin, cout, se } };
        let pw = Module {
            prefix: format!("visual.trunk.d{i}.proj.1"),
            kind: Kind::MobileOne { cin: cout, cout, k: 1, stride: 1, depthwise: false, scale: false, se: None },
        };
        let mods = [lk.clone(), pw.clone()];
        let cx = ctx(&format!("down{i}"), &mods);
        let plan = Plan::new(&cx.w, &mods).unwrap();
        let d = Downsample::load(&plan, &Params::build(&cx.w), &lk, &pw, cin, se.is_some()).unwrap();
        for (j, (h, w)) in [(16, 16), (13, 10)].into_iter().enumerate() {
            let x = input(&[2, h, w, cin], 60 + j as u64);
            let got = d.forward(&x).unwrap();
            let p = &lk.prefix;
            let mut y = cx
                .conv_bn(&x, &format!("{p}.large_conv"), 2, cin as i32)
                .add(cx.conv_bn(&x, &format!("{p}.small_conv"), 2, cin as i32))
                .unwrap();
            if se.is_some() {
                y = cx.se(&y, &format!("{p}.se"));
            }
            let y = gelu_exact(&y);
            let want = gelu_exact(&cx.mobileone(&y, &pw));
            let diff = max_diff(&got, &want);
            assert!(diff <= TOL, "downsample se={se:?} {h}x{w}: max abs diff {diff}");
        }
    }
}

/// RepMixerBlock: x + g1 (mixer(x) - BN(x)), then + g2 ConvMlp(x), against the merged 3x3
/// (residual inside) and the folded ConvMlp.
#[test]
fn repmixer_block_matches_training_form() {
    let (dim, hidden) = (16, 48);
    let b = "visual.trunk.stages.0.blocks.0";
    let mixer = Module { prefix: format!("{b}.token_mixer"), kind: Kind::RepMixer { dim } };
    let mut rest = mlp_rel(dim, hidden);
    rest.push(key("layer_scale.gamma", &[dim, 1, 1]));
    let mods = [mixer.clone(), plain("stages.0.blocks.0", rest)];
    let cx = ctx("repmixer", &mods);
    let plan = Plan::new(&cx.w, &mods).unwrap();
    let blk = Block::load_repmixer(&plan, &Params::build(&cx.w), &mixer, b, dim).unwrap();
    let x = input(&[2, 9, 8, dim], 70);
    let got = blk.forward(&x).unwrap();
    let t = &mixer.prefix;
    let mix = cx
        .conv_bn(&x, &format!("{t}.mixer.conv_kxk.0"), 1, dim as i32)
        .add(cx.conv_bn(&x, &format!("{t}.mixer.conv_scale"), 1, dim as i32))
        .unwrap()
        .add(cx.bn(&x, &format!("{t}.mixer.identity")))
        .unwrap();
    let diff_branch = mix.subtract(cx.bn(&x, &format!("{t}.norm.identity"))).unwrap();
    let x1 = x.add(diff_branch.multiply(cx.gamma(&format!("{t}.layer_scale.gamma"))).unwrap()).unwrap();
    let want = x1.add(cx.mlp(&x1, b, dim as i32).multiply(cx.gamma(&format!("{b}.layer_scale.gamma"))).unwrap()).unwrap();
    let d = max_diff(&got, &want);
    assert!(d <= TOL, "RepMixerBlock: max abs diff {d} (scale {})", max_abs(&want));
}

/// RepConditionalPosEnc: x + dwconv7x7(x) + b as one conv.
#[test]
fn rep_cpe_matches_training_form() {
    let dim = 16;
    let m = Module { prefix: "visual.trunk.stages.3.pos_emb".into(), kind: Kind::RepCpe { dim } };
    let cx = ctx("cpe", std::slice::from_ref(&m));
    let plan = Plan::new(&cx.w, std::slice::from_ref(&m)).unwrap();
    let dw = blocks::dw_module(&plan, &Params::build(&cx.w), &m, dim, 1).unwrap();
    for (i, (h, w)) in [(8, 8), (5, 9)].into_iter().enumerate() {
        let x = input(&[2, h, w, dim], 80 + i as u64);
        let want = x.add(cx.conv_bias(&x, &format!("{}.pos_enc", m.prefix), dim as i32)).unwrap();
        let d = max_diff(&dw.forward(&x).unwrap(), &want);
        assert!(d <= TOL, "RepCPE {h}x{w}: max abs diff {d}");
    }
}

/// AttentionBlock with BatchNorm (folded into qkv) and LayerNorm2d, layer scales folded.
#[test]
fn attention_blocks_match_training_form() {
    for norm in [AttnNorm::BatchNorm, AttnNorm::LayerNorm] {
        let (dim, hidden) = (64, 192);
        let mut keys = match norm {
            AttnNorm::BatchNorm => bn_rel("norm", dim),
            AttnNorm::LayerNorm => vec![key("norm.weight", &[dim]), key("norm.bias", &[dim])],
        };
        keys.extend([
            key("token_mixer.qkv.weight", &[3 * dim, dim]),
            key("token_mixer.proj.weight", &[dim, dim]),
            key("token_mixer.proj.bias", &[dim]),
            key("layer_scale_1.gamma", &[dim, 1, 1]),
        ]);
        keys.extend(mlp_rel(dim, hidden));
        keys.push(key("layer_scale_2.gamma", &[dim, 1, 1]));
        let b = "visual.trunk.stages.3.blocks.0";
        let mods = [plain("stages.3.blocks.0", keys)];
        let cx = ctx(&format!("attn{norm:?}"), &mods);
        let plan = Plan::new(&cx.w, &mods).unwrap();
        let blk = Block::load_attention(&plan, &Params::build(&cx.w), b, dim, norm).unwrap();
        let (n, h, w) = (2, 5, 4);
        let x = input(&[n, h, w, dim], 90);
        let got = blk.forward(&x).unwrap();

        let (ni, l, c, heads) = (n as i32, (h * w) as i32, dim as i32, (dim / 32) as i32);
        let normed = match norm {
            AttnNorm::BatchNorm => cx.bn(&x, &format!("{b}.norm")).reshape(&[ni, l, c]).unwrap(),
            AttnNorm::LayerNorm => {
                let t = x.reshape(&[ni, l, c]).unwrap();
                let mu = t.mean_axis(-1, true).unwrap();
                let ctr = t.subtract(&mu).unwrap();
                let var = ctr.square().unwrap().mean_axis(-1, true).unwrap();
                let y = ctr.divide(var.add(Array::from_f32(1e-5)).unwrap().sqrt().unwrap()).unwrap();
                y.multiply(cx.a(&format!("{b}.norm.weight"))).unwrap().add(cx.a(&format!("{b}.norm.bias"))).unwrap()
            }
        };
        let qkv = normed.matmul(cx.a(&format!("{b}.token_mixer.qkv.weight")).transpose().unwrap()).unwrap();
        let qkv = qkv.reshape(&[ni, l, 3, heads, 32]).unwrap().transpose_axes(&[2, 0, 3, 1, 4]).unwrap();
        let pick = |i: i32| qkv.take_axis(Array::from_int(i), 0).unwrap();
        let (q, k, v) = (pick(0), pick(1), pick(2));
        let scores = q.multiply(Array::from_f32(32f32.powf(-0.5))).unwrap().matmul(k.swap_axes(-1, -2).unwrap()).unwrap();
        let att = mlx_rs::ops::softmax_axis(&scores, -1, None).unwrap().matmul(&v).unwrap();
        let att = att.transpose_axes(&[0, 2, 1, 3]).unwrap().reshape(&[ni, l, c]).unwrap();
        let proj = att
            .matmul(cx.a(&format!("{b}.token_mixer.proj.weight")).transpose().unwrap())
            .unwrap()
            .add(cx.a(&format!("{b}.token_mixer.proj.bias")))
            .unwrap()
            .reshape(&[ni, h as i32, w as i32, c])
            .unwrap();
        let x1 = x.add(proj.multiply(cx.gamma(&format!("{b}.layer_scale_1.gamma"))).unwrap()).unwrap();
        let want = x1.add(cx.mlp(&x1, b, c).multiply(cx.gamma(&format!("{b}.layer_scale_2.gamma"))).unwrap()).unwrap();
        let d = max_diff(&got, &want);
        assert!(d <= TOL, "AttentionBlock {norm:?}: max abs diff {d} (scale {})", max_abs(&want));
    }
}

/// final_conv + SE + GELU + average pool + head.fc.
#[test]
fn head_matches_training_form() {
    let fc = mobileone("final_conv", 32, 64, 3, 1, true, true, Some(4));
    let head = plain("head", vec![key("fc.weight", &[24, 64]), key("fc.bias", &[24])]);
    let mods = [fc.clone(), head];
    let cx = ctx("head", &mods);
    let plan = Plan::new(&cx.w, &mods).unwrap();
    let h = Head::load(&plan, &Params::build(&cx.w), &fc, 32, "visual.trunk.head").unwrap();
    let x = input(&[3, 4, 4, 32], 95);
    let y = gelu_exact(&cx.se(&cx.mobileone(&x, &fc), "visual.trunk.final_conv.se"));
    let want = y
        .mean_axes(&[1, 2], false)
        .unwrap()
        .matmul(cx.a("visual.trunk.head.fc.weight").transpose().unwrap())
        .unwrap()
        .add(cx.a("visual.trunk.head.fc.bias"))
        .unwrap();
    let d = max_diff(&h.forward(&x).unwrap(), &want);
    assert!(d <= TOL, "head: max abs diff {d}");
}

/// Key inventory: the training form is exactly the `visual.*` rows of the committed
/// init_<V>.tsv (same order); the reparameterized form is exactly keys_<V>_reparam.tsv (key,
/// shape and dtype of every `visual.*` tensor of open_clip's model after timm 1.0.31's
/// `reparameterize_model`, state_dict order, recorded in the reference environment), and both
/// have the parameter counts timm reported.
#[test]
fn key_inventory_matches_reference() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models");
    // (V, timm name, embed, training keys, reparam keys, params training, params reparam)
    for (v, name, embed, n_train, n_rep, p_train, p_rep) in [
        ("S0", "fastvit_mci0", 512, 784, 310, 11_406_976usize, 11_357_504usize),
        ("S2", "fastvit_mci2", 512, 1572, 636, 35_815_232, 35_702_992),
        ("S3", "fastvit_mci3", 768, 1531, 630, 125_235_648, 125_074_272),
        ("S4", "fastvit_mci4", 768, 1565, 664, 321_784_832, 321_569_664),
    ] {
        let spec = FastVitSpec::from_timm_name(name).unwrap();
        let train = expected_keys(&spec, embed);
        let rep = expected_keys_reparam(&spec, embed);
        let tsv = std::fs::read_to_string(fixtures.join(format!("init_{v}.tsv"))).unwrap();
        let want: Vec<(String, Vec<usize>)> = crate::random_model::parse_init_tsv(&tsv)
            .unwrap()
            .into_iter()
            .filter(|r| r.key.starts_with("visual."))
            .map(|r| (r.key, r.shape))
            .collect();
        assert_eq!(train, want, "{v}: training-form keys");
        assert_eq!((train.len(), rep.len()), (n_train, n_rep), "{v}: key counts");
        // parameters = everything but BN buffers
        let params = |keys: &[(String, Vec<usize>)]| -> usize {
            keys.iter()
                .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var") && !k.ends_with("num_batches_tracked"))
                .map(|(_, s)| s.iter().product::<usize>())
                .sum()
        };
        assert_eq!((params(&train), params(&rep)), (p_train, p_rep), "{v}: parameter counts");
        // the exact reparameterized list
        let text = std::fs::read_to_string(fixtures.join(format!("keys_{v}_reparam.tsv"))).unwrap();
        let want: Vec<(String, Vec<usize>)> = text
            .lines()
            .map(|l| {
                let c: Vec<&str> = l.split('\t').collect();
                let d = c[1].trim_matches(|ch| ch == '[' || ch == ']');
                let s = if d.is_empty() { vec![] } else { d.split(", ").map(|x| x.parse().unwrap()).collect() };
                (c[0].to_string(), s)
            })
            .collect();
        assert_eq!(rep, want, "{v}: reparameterized keys");
    }
}

/// A tiny two-stage tower (every module kind) for load tests.
fn tiny_spec() -> FastVitSpec {
    FastVitSpec {
        timm_name: "tiny",
        depths: vec![1, 1],
        widths: vec![32, 64],
        attention: vec![false, true],
        pos_emb: vec![false, true],
        se_downsample: vec![false, true],
        mlp_ratio: 2,
        attn_norm: AttnNorm::BatchNorm,
        stem_scale_branch: true,
    }
}

fn write_tensors(path: &std::path::Path, tensors: &[(String, Vec<usize>, Vec<f32>)], extra_i64: &[(String, Vec<usize>)]) {
    let mut views = Vec::new();
    let zeros: Vec<Vec<u8>> = extra_i64.iter().map(|(_, s)| vec![0u8; 8 * s.iter().product::<usize>()]).collect();
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    for ((k, s, _), b) in tensors.iter().zip(&bytes) {
        views.push((k.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()));
    }
    for ((k, s), b) in extra_i64.iter().zip(&zeros) {
        views.push((k.clone(), TensorView::new(Dtype::I64, s.clone(), b).unwrap()));
    }
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Training form, fully reparameterized form and a mix of both load to the same tower; the
/// reparameterized file is written from this loader's own kernels in timm's key layout.
#[test]
fn training_reparam_and_mixed_forms_agree() {
    let spec = tiny_spec();
    let mods = modules::modules(&spec, 24);
    let cx = ctx("tower", &mods);
    let tower = FastVit::load(&Params::build(&cx.w), &spec, 24).unwrap();
    assert_eq!(tower.reparam_counts(), (mods.iter().filter(|m| m.reparameterizable()).count(), 0));
    let x = input(&[2, 32, 32, 3], 99);
    let want = tower.forward(&x).unwrap();
    assert_eq!(want.shape(), &[2, 24]);

    let plan = Plan::new(&cx.w, &mods).unwrap();
    for (name, every) in [("reparam", 1usize), ("mixed", 2)] {
        let mut tensors = Vec::new();
        let mut ints = Vec::new();
        let mut n_rep = 0;
        for (i, m) in mods.iter().enumerate() {
            let rep = m.reparameterizable() && i % every == 0;
            if rep {
                n_rep += 1;
            }
            for (k, s) in m.keys(if rep { Form::Reparam } else { Form::Training }) {
                if k.ends_with("num_batches_tracked") {
                    ints.push((k, s));
                } else if k.ends_with("reparam_conv.weight") {
                    tensors.push((k, s, plan.kernel(&cx.w, m).unwrap().w_f32()));
                } else if k.ends_with("reparam_conv.bias") {
                    tensors.push((k, s, plan.kernel(&cx.w, m).unwrap().b_f32()));
                } else {
                    tensors.push((k.clone(), s.clone(), cx.w.f32_vec(&k, &s).unwrap()));
                }
            }
        }
        let path = tmp(&format!("tower-{name}"));
        write_tensors(&path, &tensors, &ints);
        let w2 = Weights::open(&path).unwrap();
        let t2 = FastVit::load(&Params::build(&w2), &spec, 24).unwrap();
        assert_eq!(t2.reparam_counts().1, n_rep, "{name}");
        let d = max_diff(&t2.forward(&x).unwrap(), &want);
        std::fs::remove_file(&path).ok();
        assert!(d <= 1e-5, "{name}: max abs diff {d}");
    }
}

/// Missing, wrong-shaped and unexpected tensors are Model errors naming the key; bad input
/// shapes are InvalidInput.
#[test]
fn load_and_input_errors() {
    let spec = tiny_spec();
    let mods = modules::modules(&spec, 24);
    let cx = ctx("errors", &mods);
    let all: Vec<(String, Vec<usize>)> = mods.iter().flat_map(|m| m.keys(Form::Training)).collect();
    let floats: Vec<(String, Vec<usize>, Vec<f32>)> = all
        .iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, s)| (k.clone(), s.clone(), cx.w.f32_vec(k, s).unwrap()))
        .collect();
    let missing = "visual.trunk.stages.1.blocks.0.mlp.fc2.bias";
    let reshaped = "visual.trunk.stem.1.conv_kxk.0.conv.weight";
    type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;
    let cases: Vec<(&str, Tensors, &str)> = vec![
        ("missing", floats.iter().filter(|t| t.0 != missing).cloned().collect(), missing),
        (
            "shape",
            floats.iter().map(|t| if t.0 == reshaped { (t.0.clone(), vec![32, 1, 9], t.2.clone()) } else { t.clone() }).collect(),
            reshaped,
        ),
        (
            "extra",
            floats.iter().cloned().chain([("visual.trunk.stages.0.blocks.7.mlp.fc1.bias".to_string(), vec![2], vec![0.0, 0.0])]).collect(),
            "visual.trunk.stages.0.blocks.7.mlp.fc1.bias",
        ),
        (
            "half-reparam",
            floats
                .iter()
                .cloned()
                .chain([("visual.trunk.stem.2.reparam_conv.weight".to_string(), vec![32, 32, 1, 1], vec![0.0; 1024])])
                .collect(),
            "visual.trunk.stem.2.reparam_conv.bias",
        ),
    ];
    for (name, tensors, key) in cases {
        let path = tmp(&format!("err-{name}"));
        write_tensors(&path, &tensors, &[]);
        let w = Weights::open(&path).unwrap();
        let err = FastVit::load(&Params::build(&w), &spec, 24).err().map(|e| (matches!(e, EngineError::Model(_)), e.to_string()));
        std::fs::remove_file(&path).ok();
        let (is_model, msg) = err.unwrap_or_else(|| panic!("{name}: loaded"));
        assert!(is_model && msg.contains(key), "{name}: {msg}");
    }
    // wrong embed dim is a shape error on head.fc
    let e = FastVit::load(&Params::build(&cx.w), &spec, 25).err().unwrap().to_string();
    assert!(e.contains("head.fc.weight"), "{e}");

    let tower = FastVit::load(&Params::build(&cx.w), &spec, 24).unwrap();
    for bad in [input(&[2, 8, 8, 4], 1), input(&[8, 8, 3], 1)] {
        assert!(matches!(tower.forward(&bad), Err(EngineError::InvalidInput(_))));
    }
}
