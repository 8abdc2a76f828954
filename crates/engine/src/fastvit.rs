//! FastViT MCi image towers (MobileCLIP2 S0 = MCi0, S2 = MCi2, S3 = MCi3, S4 = MCi4), timm
//! 1.0.31 `models/fastvit.py`, as open_clip wraps it (`visual.trunk.*`, the timm head resized
//! to the embed dim is the projection).
//!
//! Weights may come in training form (multi-branch, BatchNorm running stats: what the
//! released open_clip_model.safetensors holds) or already reparameterized (timm
//! `reparameterize_model`); the form is detected per module and training-form modules are
//! reparameterized at load on the host ([`reparam`]). Forward runs the inference form only:
//! depthwise and stem convs as the kernel layer's direct conv primitives
//! ([`crate::kernels::depthwise`], [`crate::kernels::conv_small`]), 1x1 convs as GEMMs with
//! bias, GELU, residual and squeeze-excite scale fused into one epilogue pass, GELU with the
//! rational erf.
//!
//! timm's `models/fastvit.py` (1.0.31) is the reference for every block ([`spec`] has its
//! per-variant table); [`blocks`] lists the folds done beyond timm.

pub mod blocks;
pub mod modules;
pub mod reparam;
pub mod spec;

use std::collections::HashMap;

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::Array;

use crate::error::{EngineError, Result};
use crate::params::Params;
use crate::weights::Weights;
use blocks::{Block, Downsample, Dw, Head, Stem};
use modules::{Module, Plan};
pub use spec::FastVitSpec;

/// Every tensor of the training-form trunk + head (keys `visual.trunk.…`, state_dict order,
/// as the `visual.*` rows of tests/fixtures/models/init_<V>.tsv list them). Includes the
/// BatchNorm `num_batches_tracked` counters (shape [], int64 in the file): they are accepted
/// but optional and never read. The loader checks through `modules::Plan`; this flat list is
/// for the inventory test.
#[cfg(test)]
pub fn expected_keys(spec: &FastVitSpec, embed_dim: usize) -> Vec<(String, Vec<usize>)> {
    modules::modules(spec, embed_dim).iter().flat_map(|m| m.keys(modules::Form::Training)).collect()
}

/// The same after timm's `reparameterize_model` (tests/fixtures/models/keys_<V>_reparam.tsv).
#[cfg(test)]
pub fn expected_keys_reparam(spec: &FastVitSpec, embed_dim: usize) -> Vec<(String, Vec<usize>)> {
    modules::modules(spec, embed_dim).iter().flat_map(|m| m.keys(modules::Form::Reparam)).collect()
}

struct Stage {
    down: Option<Downsample>,
    pos: Option<Dw>,
    blocks: Vec<Block>,
    /// Output at >= 32x32 for a 256 input: run per image (see `run`).
    per_image: bool,
}

impl Stage {
    /// Calls `tap` after the downsample (and CPE) and after each block: a tap that evaluates
    /// keeps MLX's live memory to about one block's intermediates (evaluating a whole stage
    /// as one graph held ~13 MB per S0 image at its peak, per block ~1 MB).
    fn forward(&self, name: &str, x: &Array, tap: &mut dyn FnMut(&str, &Array) -> Result<()>) -> Result<Array> {
        let mut x = match &self.down {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        if let Some(p) = &self.pos {
            x = p.forward(&x)?;
        }
        if self.down.is_some() || self.pos.is_some() {
            tap(name, &x)?;
        }
        for b in &self.blocks {
            x = b.forward(&x)?;
            tap(name, &x)?;
        }
        Ok(x)
    }
}

pub struct FastVit {
    stem: Stem,
    stages: Vec<Stage>,
    head: Head,
    /// (width, attention) per stage and the MLP ratio: what `activation_bytes` needs.
    widths: Vec<(usize, bool)>,
    mlp_ratio: usize,
    /// (modules that arrived in training form and were reparameterized at load, modules that
    /// arrived reparameterized): what the tests check form detection by.
    #[cfg(any(test, feature = "testdata"))]
    reparam_counts: (usize, usize),
}

impl FastVit {
    /// Header-only checks: every key and shape of the detected forms, and no stray
    /// `visual.*` key. No tensor data is read.
    pub fn check_header(w: &Weights, spec: &FastVitSpec, embed_dim: usize) -> Result<()> {
        Plan::new(w, &modules::modules(spec, embed_dim)).map(|_| ())
    }

    /// The tower from `p` (the model file or the weights cache).
    pub fn load(p: &Params, spec: &FastVitSpec, embed_dim: usize) -> Result<FastVit> {
        let mods = modules::modules(spec, embed_dim);
        // Header pass: every key and shape of the detected forms, and no stray visual.* keys,
        // before any tensor data is read.
        let plan = Plan::new(p.src(), &mods)?;
        let by: HashMap<&str, &Module> = mods.iter().map(|m| (m.prefix.as_str(), m)).collect();
        let get = |p: String| -> Result<&Module> {
            by.get(p.as_str()).copied().ok_or_else(|| EngineError::Model(format!("internal: no FastViT module {p}")))
        };
        let t = modules::PREFIX;
        let c0 = spec.widths[0];
        let stem = Stem::load(&plan, p, [get(format!("{t}stem.0"))?, get(format!("{t}stem.1"))?, get(format!("{t}stem.2"))?], c0)?;
        let mut stages = Vec::with_capacity(spec.stages());
        for i in 0..spec.stages() {
            let dim = spec.widths[i];
            let down = if i > 0 {
                Some(Downsample::load(
                    &plan,
                    p,
                    get(format!("{t}stages.{i}.downsample.proj.0"))?,
                    get(format!("{t}stages.{i}.downsample.proj.1"))?,
                    spec.widths[i - 1],
                    spec.se_downsample[i],
                )?)
            } else {
                None
            };
            let pos =
                if spec.pos_emb[i] { Some(blocks::dw_module(&plan, p, get(format!("{t}stages.{i}.pos_emb"))?, dim, 1)?) } else { None };
            let mut bl = Vec::with_capacity(spec.depths[i]);
            for j in 0..spec.depths[i] {
                let b = format!("{t}stages.{i}.blocks.{j}");
                bl.push(if spec.attention[i] {
                    Block::load_attention(&plan, p, &b, dim, spec.attn_norm)?
                } else {
                    Block::load_repmixer(&plan, p, get(format!("{b}.token_mixer"))?, &b, dim)?
                });
            }
            stages.push(Stage { down, pos, blocks: bl, per_image: i < 2 });
        }
        let last = spec.widths[spec.stages() - 1];
        let head = Head::load(&plan, p, get(format!("{t}final_conv"))?, last, &format!("{t}head"))?;
        #[cfg(any(test, feature = "testdata"))]
        let reparam_counts = {
            let (mut training, mut reparam) = (0, 0);
            for m in mods.iter().filter(|m| m.reparameterizable()) {
                match plan.form(&m.prefix)? {
                    modules::Form::Training => training += 1,
                    modules::Form::Reparam => reparam += 1,
                }
            }
            (training, reparam)
        };
        Ok(FastVit {
            stem,
            stages,
            head,
            widths: spec.widths.iter().copied().zip(spec.attention.iter().copied()).collect(),
            mlp_ratio: spec.mlp_ratio,
            #[cfg(any(test, feature = "testdata"))]
            reparam_counts,
        })
    }

    /// An upper bound of the memory a forward pass over `n` images of `image_size` needs
    /// beyond the weights (footprint.rs).
    pub fn activation_bytes(&self, n: usize, image_size: usize) -> usize {
        let stages: Vec<(usize, usize, bool)> =
            self.widths.iter().enumerate().map(|(i, &(w, attn))| ((image_size / 4) >> i, w, attn)).collect();
        let early = self.stages.iter().take_while(|st| st.per_image).count();
        crate::footprint::fastvit(n, image_size, &stages, early, self.mlp_ratio, crate::kernels::threads())
    }

    /// (modules reparameterized at load, modules that arrived reparameterized).
    #[cfg(any(test, feature = "testdata"))]
    pub fn reparam_counts(&self) -> (usize, usize) {
        self.reparam_counts
    }

    /// `x`: [N, H, W, 3] float32, normalised pixels (NHWC; MobileCLIP2 uses H = W = 256).
    /// Returns the head output [N, embed_dim], not L2-normalised. The graph is lazy: the
    /// caller evaluates it. (The product goes through `run`, evaluated in pieces, from
    /// VisionTower::forward_checked; this is the tower alone, for the engine's own tests.)
    #[cfg(any(test, feature = "testdata"))]
    pub fn forward(&self, x: &Array) -> Result<Array> {
        self.run(x, &mut |_, _| Ok(()))
    }

    /// `forward`, evaluating after the stem, each block and the head, and returning the wall
    /// time of each part (ms: the early stages of all images, then each later stage): for
    /// benchmarks (tests/fastvit_bench.rs, feature `bench`). Evaluating in between costs a
    /// little overlap.
    #[cfg(feature = "bench")]
    pub fn forward_profiled(&self, x: &Array) -> Result<(Array, Vec<(String, f64)>)> {
        let mut times = Vec::new();
        let mut t0 = std::time::Instant::now();
        let out = self.run(x, &mut |name, y| {
            y.eval()?;
            let now = std::time::Instant::now();
            let ms = (now - t0).as_secs_f64() * 1e3;
            // One entry per part: its blocks (and, per image, its images) add up.
            match times.iter_mut().find(|(n, _)| n == name) {
                Some((_, t)) => *t += ms,
                None => times.push((name.to_string(), ms)),
            }
            t0 = now;
            Ok(())
        })?;
        Ok((out, times))
    }

    /// `forward`, calling `tap` with each piece of the graph as it is built: each image's
    /// stem and each block of its early stages, then each block of the later stages, then
    /// the head. A tap that evaluates runs the graph in those pieces (cancellation checks,
    /// profiles).
    pub(crate) fn run(&self, x: &Array, tap: &mut dyn FnMut(&str, &Array) -> Result<()>) -> Result<Array> {
        let s = x.shape();
        if s.len() != 4 || s[3] != 3 || s[0] < 1 || s[1] < 1 || s[2] < 1 {
            return Err(EngineError::InvalidInput(format!("FastViT input must be [N, H, W, 3] with N, H, W >= 1, got {s:?}")));
        }
        if x.dtype() != mlx_rs::Dtype::Float32 {
            return Err(EngineError::InvalidInput(format!("FastViT input must be float32, got {:?}", x.dtype())));
        }
        // Stem and the high-resolution stages run one image at a time: their activations are
        // large and their weights small, so a batch-1 graph keeps each chain of element-wise
        // ops in cache (batch 16 at once was 1.7x slower per image here). From the first stage
        // at <= 16x16 on, weights dominate and the batch runs together.
        let n = s[0];
        let early = self.stages.iter().take_while(|st| st.per_image).count();
        let mut parts = Vec::with_capacity(n as usize);
        for i in 0..n {
            let xi = if n == 1 { x.clone() } else { x.try_index(i..i + 1)? };
            let name = format!("stem + stages 0..{early} (per image)");
            let mut y = self.stem.forward(&xi)?;
            tap(&name, &y)?;
            for st in &self.stages[..early] {
                y = st.forward(&name, &y, tap)?;
            }
            parts.push(y);
        }
        let mut x = if n == 1 { parts.remove(0) } else { mlx_rs::ops::concatenate(&parts, 0)? };
        for (i, st) in self.stages.iter().enumerate().skip(early) {
            x = st.forward(&format!("stage {i}"), &x, tap)?;
        }
        let y = self.head.forward(&x)?;
        tap("head", &y)?;
        Ok(y)
    }
}

#[cfg(test)]
mod tests;
