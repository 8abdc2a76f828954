//! FastViT MCi image towers (MobileCLIP2 S0 = MCi0, S2 = MCi2, S3 = MCi3, S4 = MCi4), timm
//! 1.0.31 `models/fastvit.py`, as open_clip wraps it (`visual.trunk.*`, the timm head resized
//! to the embed dim is the projection).
//!
//! Weights may come in training form (multi-branch, BatchNorm running stats: what the
//! released open_clip_model.safetensors holds) or already reparameterized (timm
//! `reparameterize_model`); the form is detected per module and training-form modules are
//! reparameterized at load on the host ([`reparam`]). Forward runs the inference form only:
//! depthwise convs as shifted multiply-adds, 1x1 convs as GEMMs, rational-erf GELU.
//!
//! ARCHITECTURE.md §4 describes every block; [`blocks`] lists the folds done beyond timm.

pub mod blocks;
pub mod modules;
pub mod reparam;
pub mod spec;

use std::collections::HashMap;

use mlx_rs::Array;

use crate::error::{EngineError, Result};
use crate::weights::Weights;
use blocks::{Block, Downsample, Dw, Head, Stem};
use modules::{Form, Module, Plan};
pub use spec::{AttnNorm, FastVitSpec};

/// Every tensor of the training-form trunk + head (keys `visual.trunk.…`, state_dict order,
/// as keys_<V>.tsv lists them). Includes the BatchNorm `num_batches_tracked` counters (shape
/// [], int64 in the file): they are accepted but optional and never read.
pub fn expected_keys(spec: &FastVitSpec, embed_dim: usize) -> Vec<(String, Vec<usize>)> {
    modules::modules(spec, embed_dim).iter().flat_map(|m| m.keys(Form::Training)).collect()
}

/// The same after timm's `reparameterize_model` (keys_<V>_reparam.tsv).
pub fn expected_keys_reparam(spec: &FastVitSpec, embed_dim: usize) -> Vec<(String, Vec<usize>)> {
    modules::modules(spec, embed_dim).iter().flat_map(|m| m.keys(Form::Reparam)).collect()
}

struct Stage {
    down: Option<Downsample>,
    pos: Option<Dw>,
    blocks: Vec<Block>,
}

pub struct FastVit {
    spec: FastVitSpec,
    embed_dim: usize,
    stem: Stem,
    stages: Vec<Stage>,
    head: Head,
    /// How many reparameterizable modules arrived in training form (the rest were already
    /// reparameterized): for diagnostics.
    training_modules: usize,
    reparam_modules: usize,
}

impl FastVit {
    pub fn load(w: &Weights, spec: &FastVitSpec, embed_dim: usize) -> Result<FastVit> {
        let mods = modules::modules(spec, embed_dim);
        // Header pass: every key and shape of the detected forms, and no stray visual.* keys,
        // before any tensor data is read.
        let plan = Plan::new(w, &mods)?;
        let by: HashMap<&str, &Module> = mods.iter().map(|m| (m.prefix.as_str(), m)).collect();
        let get = |p: String| -> Result<&Module> {
            by.get(p.as_str()).copied().ok_or_else(|| EngineError::Model(format!("internal: no FastViT module {p}")))
        };
        let t = modules::PREFIX;
        let c0 = spec.widths[0];
        let stem = Stem::load(&plan, w, [get(format!("{t}stem.0"))?, get(format!("{t}stem.1"))?, get(format!("{t}stem.2"))?], c0)?;
        let mut stages = Vec::with_capacity(spec.stages());
        for i in 0..spec.stages() {
            let dim = spec.widths[i];
            let down = if i > 0 {
                Some(Downsample::load(
                    &plan,
                    w,
                    get(format!("{t}stages.{i}.downsample.proj.0"))?,
                    get(format!("{t}stages.{i}.downsample.proj.1"))?,
                    spec.widths[i - 1],
                    spec.se_downsample[i],
                )?)
            } else {
                None
            };
            let pos = if spec.pos_emb[i] {
                Some(blocks::dw_module(&plan, w, get(format!("{t}stages.{i}.pos_emb"))?, dim, 1)?)
            } else {
                None
            };
            let mut bl = Vec::with_capacity(spec.depths[i]);
            for j in 0..spec.depths[i] {
                let b = format!("{t}stages.{i}.blocks.{j}");
                bl.push(if spec.attention[i] {
                    Block::load_attention(&plan, w, &b, dim, spec.attn_norm)?
                } else {
                    Block::load_repmixer(&plan, w, get(format!("{b}.token_mixer"))?, &b, dim)?
                });
            }
            stages.push(Stage { down, pos, blocks: bl });
        }
        let last = spec.widths[spec.stages() - 1];
        let head = Head::load(&plan, w, get(format!("{t}final_conv"))?, last, &format!("{t}head"))?;
        let mut training_modules = 0;
        let mut reparam_modules = 0;
        for m in mods.iter().filter(|m| m.reparameterizable()) {
            match plan.form(&m.prefix)? {
                Form::Training => training_modules += 1,
                Form::Reparam => reparam_modules += 1,
            }
        }
        let tower = FastVit { spec: spec.clone(), embed_dim, stem, stages, head, training_modules, reparam_modules };
        tower.materialize()?;
        Ok(tower)
    }

    /// Evaluates every parameter now, so load cost and errors happen at load, not first use.
    fn materialize(&self) -> Result<()> {
        let mut all = self.stem.params();
        for s in &self.stages {
            if let Some(d) = &s.down {
                all.extend(d.params());
            }
            if let Some(p) = &s.pos {
                all.extend(blocks::dw_params(p));
            }
            for b in &s.blocks {
                all.extend(b.params());
            }
        }
        all.extend(self.head.params());
        mlx_rs::transforms::eval(all)?;
        Ok(())
    }

    pub fn spec(&self) -> &FastVitSpec {
        &self.spec
    }

    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// (modules reparameterized at load, modules that arrived reparameterized).
    pub fn reparam_counts(&self) -> (usize, usize) {
        (self.training_modules, self.reparam_modules)
    }

    /// `x`: [N, H, W, 3] float32, normalised pixels (NHWC; MobileCLIP2 uses H = W = 256).
    /// Returns the head output [N, embed_dim], not L2-normalised. The graph is lazy: the
    /// caller evaluates it.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let s = x.shape();
        if s.len() != 4 || s[3] != 3 || s[0] < 1 || s[1] < 1 || s[2] < 1 {
            return Err(EngineError::InvalidInput(format!("FastViT input must be [N, H, W, 3] with N, H, W >= 1, got {s:?}")));
        }
        if x.dtype() != mlx_rs::Dtype::Float32 {
            return Err(EngineError::InvalidInput(format!("FastViT input must be float32, got {:?}", x.dtype())));
        }
        let mut x = self.stem.forward(x)?;
        for st in &self.stages {
            if let Some(d) = &st.down {
                x = d.forward(&x)?;
            }
            if let Some(p) = &st.pos {
                x = p.forward(&x)?;
            }
            for b in &st.blocks {
                x = b.forward(&x)?;
            }
        }
        self.head.forward(&x)
    }
}

#[cfg(test)]
mod tests;
