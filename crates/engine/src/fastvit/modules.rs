//! The tensor inventory of a FastViT MCi trunk: every module with its keys and shapes in
//! training form (what open_clip_model.safetensors holds) and in reparameterized form (after
//! timm's `reparameterize_model`), in state_dict order. One list drives `expected_keys`, the
//! header checks and the loader, so the three cannot disagree.

use std::collections::{HashMap, HashSet};

use super::reparam::{self, Bn, ConvKernel};
use super::spec::*;
use crate::error::{EngineError, Result};
use crate::weights::Weights;

pub const PREFIX: &str = "visual.trunk.";

pub type Key = (String, Vec<usize>);

/// The BatchNorm counter: int64, in the file but never read (neither form needs it).
pub const NBT: &str = ".num_batches_tracked";

#[derive(Clone, Debug)]
pub enum Kind {
    /// MobileOneBlock; `depthwise`: groups = cin (out = m * cin), else groups = 1.
    /// Identity BN branch iff cin == cout and stride 1; `scale`: 1x1 branch present.
    MobileOne { cin: usize, cout: usize, k: usize, stride: usize, depthwise: bool, scale: bool, se: Option<usize> },
    /// ReparamLargeKernelConv 7x7 + 3x3, stride 2, groups = cin.
    LargeKernel {
        // Describes the module (groups = cin); no key shape depends on it (the kernels are
        // [cout, 1, k, k]), so nothing reads it.
        #[allow(dead_code)]
        cin: usize,
        cout: usize,
        se: Option<usize>,
    },
    /// RepMixer (3x3 depthwise), prefix = `...token_mixer`.
    RepMixer { dim: usize },
    /// RepConditionalPosEnc (7x7 depthwise), prefix = `...pos_emb`.
    RepCpe { dim: usize },
    /// Tensors that are the same in both forms (key suffixes after the prefix).
    Plain(Vec<Key>),
}

#[derive(Clone, Debug)]
pub struct Module {
    pub prefix: String,
    pub kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Training,
    Reparam,
}

fn k(p: &str, name: &str, shape: &[usize]) -> Key {
    (format!("{p}.{name}"), shape.to_vec())
}

fn bn_keys(p: &str, c: usize) -> Vec<Key> {
    vec![k(p, "weight", &[c]), k(p, "bias", &[c]), k(p, "running_mean", &[c]), k(p, "running_var", &[c]), k(p, "num_batches_tracked", &[])]
}

fn conv_bn_keys(p: &str, out: usize, cin_g: usize, ks: usize) -> Vec<Key> {
    let mut v = vec![k(p, "conv.weight", &[out, cin_g, ks, ks])];
    v.extend(bn_keys(&format!("{p}.bn"), out));
    v
}

fn se_keys(p: &str, c: usize, rd: usize) -> Vec<Key> {
    vec![k(p, "fc1.weight", &[rd, c, 1, 1]), k(p, "fc1.bias", &[rd]), k(p, "fc2.weight", &[c, rd, 1, 1]), k(p, "fc2.bias", &[c])]
}

fn reparam_conv_keys(p: &str, out: usize, cin_g: usize, ks: usize) -> Vec<Key> {
    vec![k(p, "reparam_conv.weight", &[out, cin_g, ks, ks]), k(p, "reparam_conv.bias", &[out])]
}

impl Module {
    fn new(prefix: String, kind: Kind) -> Self {
        Module { prefix, kind }
    }

    /// (out, in / groups, k) of the one conv a reparameterizable module becomes: the shape of
    /// its `reparam_conv.weight`.
    pub fn kernel_shape(&self) -> Result<(usize, usize, usize)> {
        let want = format!("{}.reparam_conv.weight", self.prefix);
        match self.keys(Form::Reparam).into_iter().find(|(k, _)| *k == want) {
            Some((_, s)) if s.len() == 4 => Ok((s[0], s[1], s[2])),
            _ => Err(internal(&want)),
        }
    }

    pub fn reparameterizable(&self) -> bool {
        !matches!(self.kind, Kind::Plain(_))
    }

    pub fn keys(&self, form: Form) -> Vec<Key> {
        let p = self.prefix.as_str();
        let mut v = Vec::new();
        match (&self.kind, form) {
            (Kind::Plain(keys), _) => v.extend(keys.iter().map(|(n, s)| (format!("{p}.{n}"), s.clone()))),
            (&Kind::MobileOne { cin, cout, k: ks, stride, depthwise, scale, se }, form) => {
                let cin_g = if depthwise { 1 } else { cin };
                if let Some(rd) = se {
                    v.extend(se_keys(&format!("{p}.se"), cout, rd));
                }
                if form == Form::Reparam {
                    v.extend(reparam_conv_keys(p, cout, cin_g, ks));
                } else {
                    if cin == cout && stride == 1 {
                        v.extend(bn_keys(&format!("{p}.identity"), cin));
                    }
                    v.extend(conv_bn_keys(&format!("{p}.conv_kxk.0"), cout, cin_g, ks));
                    if scale {
                        v.extend(conv_bn_keys(&format!("{p}.conv_scale"), cout, cin_g, 1));
                    }
                }
            }
            (&Kind::LargeKernel { cout, se, .. }, Form::Training) => {
                v.extend(conv_bn_keys(&format!("{p}.large_conv"), cout, 1, DOWN_K));
                v.extend(conv_bn_keys(&format!("{p}.small_conv"), cout, 1, DOWN_SMALL_K));
                if let Some(rd) = se {
                    v.extend(se_keys(&format!("{p}.se"), cout, rd));
                }
            }
            (&Kind::LargeKernel { cout, se, .. }, Form::Reparam) => {
                if let Some(rd) = se {
                    v.extend(se_keys(&format!("{p}.se"), cout, rd));
                }
                v.extend(reparam_conv_keys(p, cout, 1, DOWN_K));
            }
            (&Kind::RepMixer { dim }, Form::Training) => {
                v.extend(bn_keys(&format!("{p}.norm.identity"), dim));
                v.extend(bn_keys(&format!("{p}.mixer.identity"), dim));
                v.extend(conv_bn_keys(&format!("{p}.mixer.conv_kxk.0"), dim, 1, REPMIXER_K));
                v.extend(conv_bn_keys(&format!("{p}.mixer.conv_scale"), dim, 1, 1));
                v.push(k(p, "layer_scale.gamma", &[dim, 1, 1]));
            }
            (&Kind::RepMixer { dim }, Form::Reparam) => v.extend(reparam_conv_keys(p, dim, 1, REPMIXER_K)),
            (&Kind::RepCpe { dim }, Form::Training) => {
                v.push(k(p, "pos_enc.weight", &[dim, 1, CPE_K, CPE_K]));
                v.push(k(p, "pos_enc.bias", &[dim]));
            }
            (&Kind::RepCpe { dim }, Form::Reparam) => v.extend(reparam_conv_keys(p, dim, 1, CPE_K)),
        }
        v
    }
}

fn plain(prefix: String, keys: Vec<Key>) -> Module {
    Module::new(prefix, Kind::Plain(keys))
}

fn rel_bn(name: &str, c: usize) -> Vec<Key> {
    bn_keys(name, c)
}

fn mlp_keys(dim: usize, hidden: usize) -> Vec<Key> {
    let mut v = vec![k("mlp", "conv.conv.weight", &[dim, 1, MLP_CONV_K, MLP_CONV_K])];
    v.extend(rel_bn("mlp.conv.bn", dim));
    v.push(k("mlp", "fc1.weight", &[hidden, dim, 1, 1]));
    v.push(k("mlp", "fc1.bias", &[hidden]));
    v.push(k("mlp", "fc2.weight", &[dim, hidden, 1, 1]));
    v.push(k("mlp", "fc2.bias", &[dim]));
    v
}

/// Every module of the trunk + head in state_dict order.
pub fn modules(spec: &FastVitSpec, embed_dim: usize) -> Vec<Module> {
    let p = |s: &str| format!("{PREFIX}{s}");
    let c0 = spec.widths[0];
    let sc = spec.stem_scale_branch;
    let mut m = vec![
        Module::new(p("stem.0"), Kind::MobileOne { cin: 3, cout: c0, k: 3, stride: 2, depthwise: false, scale: sc, se: None }),
        Module::new(p("stem.1"), Kind::MobileOne { cin: c0, cout: c0, k: 3, stride: 2, depthwise: true, scale: sc, se: None }),
        Module::new(p("stem.2"), Kind::MobileOne { cin: c0, cout: c0, k: 1, stride: 1, depthwise: false, scale: false, se: None }),
    ];
    for i in 0..spec.stages() {
        let w = spec.widths[i];
        let hidden = w * spec.mlp_ratio;
        if i > 0 {
            let d = p(&format!("stages.{i}.downsample.proj"));
            m.push(Module::new(format!("{d}.0"), Kind::LargeKernel { cin: spec.widths[i - 1], cout: w, se: spec.down_se_width(i) }));
            m.push(Module::new(
                format!("{d}.1"),
                Kind::MobileOne { cin: w, cout: w, k: 1, stride: 1, depthwise: false, scale: false, se: None },
            ));
        }
        if spec.pos_emb[i] {
            m.push(Module::new(p(&format!("stages.{i}.pos_emb")), Kind::RepCpe { dim: w }));
        }
        for j in 0..spec.depths[i] {
            let b = p(&format!("stages.{i}.blocks.{j}"));
            if spec.attention[i] {
                let mut keys = match spec.attn_norm {
                    AttnNorm::BatchNorm => rel_bn("norm", w),
                    AttnNorm::LayerNorm => vec![k("norm", "weight", &[w]), k("norm", "bias", &[w])],
                };
                keys.push(k("token_mixer", "qkv.weight", &[3 * w, w]));
                keys.push(k("token_mixer", "proj.weight", &[w, w]));
                keys.push(k("token_mixer", "proj.bias", &[w]));
                keys.push(k("layer_scale_1", "gamma", &[w, 1, 1]));
                keys.extend(mlp_keys(w, hidden));
                keys.push(k("layer_scale_2", "gamma", &[w, 1, 1]));
                m.push(plain(b, keys));
            } else {
                m.push(Module::new(format!("{b}.token_mixer"), Kind::RepMixer { dim: w }));
                let mut keys = mlp_keys(w, hidden);
                keys.push(k("layer_scale", "gamma", &[w, 1, 1]));
                m.push(plain(b, keys));
            }
        }
    }
    let wl = spec.widths[spec.stages() - 1];
    let fw = spec.final_width();
    m.push(Module::new(
        p("final_conv"),
        Kind::MobileOne { cin: wl, cout: fw, k: 3, stride: 1, depthwise: true, scale: true, se: Some(spec.final_se_width()) },
    ));
    m.push(plain(p("head"), vec![k("fc", "weight", &[embed_dim, fw]), k("fc", "bias", &[embed_dim])]));
    m
}

/// Which form each module has in a file, with every float key checked from the header.
pub struct Plan {
    forms: HashMap<String, Form>,
    shapes: HashMap<String, Vec<usize>>,
}

impl Plan {
    /// Detects the form per module (a `reparam_conv.weight` key means reparameterized),
    /// checks every key of that form (shape, float dtype) before any data is read, and
    /// rejects `visual.*` keys that belong to neither the detected forms nor the model.
    pub fn new(w: &Weights, modules: &[Module]) -> Result<Plan> {
        let mut forms = HashMap::new();
        let mut shapes = HashMap::new();
        let mut allowed: HashSet<String> = HashSet::new();
        for m in modules {
            let form = if m.reparameterizable() && w.contains(&format!("{}.reparam_conv.weight", m.prefix)) {
                Form::Reparam
            } else {
                Form::Training
            };
            for (key, shape) in m.keys(form) {
                if key.ends_with(NBT) {
                    // optional, int64, unused
                } else {
                    w.check(&key, &shape)?;
                    shapes.insert(key.clone(), shape);
                }
                allowed.insert(key);
            }
            forms.insert(m.prefix.clone(), form);
        }
        let hint = "not part of this FastViT tower (or a module mixes training and reparameterized keys)";
        w.reject_unexpected("visual.", |k| allowed.contains(k), "image", hint)?;
        Ok(Plan { forms, shapes })
    }

    pub fn form(&self, prefix: &str) -> Result<Form> {
        self.forms.get(prefix).copied().ok_or_else(|| internal(prefix))
    }

    pub fn shape(&self, key: &str) -> Result<&[usize]> {
        self.shapes.get(key).map(|s| s.as_slice()).ok_or_else(|| internal(key))
    }

    /// A checked tensor's values.
    pub fn vec(&self, w: &Weights, key: &str) -> Result<Vec<f32>> {
        w.f32_vec(key, self.shape(key)?)
    }

    pub fn bn(&self, w: &Weights, p: &str) -> Result<Bn> {
        Ok(Bn {
            gamma: self.vec(w, &format!("{p}.weight"))?,
            beta: self.vec(w, &format!("{p}.bias"))?,
            mean: self.vec(w, &format!("{p}.running_mean"))?,
            var: self.vec(w, &format!("{p}.running_var"))?,
            eps: NORM_EPS,
        })
    }

    fn conv_bn(&self, w: &Weights, p: &str) -> Result<ConvKernel> {
        let key = format!("{p}.conv.weight");
        let s = self.shape(&key)?.to_vec();
        ConvKernel::conv_bn(&self.vec(w, &key)?, &self.bn(w, &format!("{p}.bn"))?, s[1], s[2])
    }

    fn reparam_conv(&self, w: &Weights, p: &str) -> Result<ConvKernel> {
        let key = format!("{p}.reparam_conv.weight");
        let s = self.shape(&key)?.to_vec();
        ConvKernel::from_f32(&self.vec(w, &key)?, Some(&self.vec(w, &format!("{p}.reparam_conv.bias"))?), s[0], s[1], s[2])
    }

    /// The single inference conv of a reparameterizable module, whichever form the file has.
    pub fn kernel(&self, w: &Weights, m: &Module) -> Result<ConvKernel> {
        let p = m.prefix.as_str();
        if self.form(p)? == Form::Reparam {
            return self.reparam_conv(w, p);
        }
        match m.kind {
            Kind::MobileOne { cin, cout, stride, scale, .. } => {
                let kxk = self.conv_bn(w, &format!("{p}.conv_kxk.0"))?;
                let sc = if scale { Some(self.conv_bn(w, &format!("{p}.conv_scale"))?) } else { None };
                let id = if cin == cout && stride == 1 { Some(self.bn(w, &format!("{p}.identity"))?) } else { None };
                reparam::mobileone(kxk, sc, id.as_ref())
            }
            Kind::LargeKernel { .. } => {
                reparam::large_kernel(self.conv_bn(w, &format!("{p}.large_conv"))?, self.conv_bn(w, &format!("{p}.small_conv"))?)
            }
            Kind::RepMixer { .. } => {
                let mixer = reparam::mobileone(
                    self.conv_bn(w, &format!("{p}.mixer.conv_kxk.0"))?,
                    Some(self.conv_bn(w, &format!("{p}.mixer.conv_scale"))?),
                    Some(&self.bn(w, &format!("{p}.mixer.identity"))?),
                )?;
                let norm = ConvKernel::identity_bn(&self.bn(w, &format!("{p}.norm.identity"))?, 1, REPMIXER_K);
                reparam::repmixer(mixer, norm, &self.vec(w, &format!("{p}.layer_scale.gamma"))?)
            }
            Kind::RepCpe { dim } => reparam::rep_cpe(ConvKernel::from_f32(
                &self.vec(w, &format!("{p}.pos_enc.weight"))?,
                Some(&self.vec(w, &format!("{p}.pos_enc.bias"))?),
                dim,
                1,
                CPE_K,
            )?),
            Kind::Plain(_) => Err(internal(p)),
        }
    }
}

fn internal(what: &str) -> EngineError {
    EngineError::Model(format!("internal: FastViT loader asked for unplanned tensor/module {what}"))
}
