//! The image tower named by `vision_cfg.timm_model_name`: FastViT MCi (S0, S2, S3, S4) or ViT
//! (B, L-14). Normalised NHWC pixels in, L2-normalised embeddings out
//! (open_clip `encode_image(x, normalize=True)`).

use mlx_rs::Array;

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::fastvit::{FastVit, FastVitSpec};
use crate::nn;
use crate::params::Params;
use crate::vit::{Vit, VitSpec};
use crate::weights::Weights;

enum Trunk {
    FastVit(FastVit),
    Vit(Vit),
}

pub struct VisionTower {
    trunk: Trunk,
    image_size: usize,
}

/// Which trunk the config names, checked against what this engine supports.
enum Spec {
    FastVit(FastVitSpec),
    Vit(VitSpec),
}

fn spec(cfg: &ModelConfig) -> Result<Spec> {
    let v = cfg.vision();
    let name = v.timm_model_name.as_deref().unwrap_or_default();
    let size = cfg.image_preprocess()?.size as usize;
    let bad = |field: &str, why: String| EngineError::Model(format!("model_cfg.vision_cfg.{field}: {why}"));
    if let Some(spec) = FastVitSpec::from_timm_name(name) {
        if v.timm_pool != "avg" {
            return Err(bad("timm_pool", format!("\"{}\" is not supported for {name} (avg is)", v.timm_pool)));
        }
        Ok(Spec::FastVit(spec))
    } else if let Some(spec) = VitSpec::from_timm_name(name) {
        if v.timm_pool != "token" {
            return Err(bad("timm_pool", format!("\"{}\" is not supported for {name} (token is)", v.timm_pool)));
        }
        if spec.image_size != size {
            return Err(bad(
                "image_size",
                format!("{size}: {name} has position embeddings for {} x {} only", spec.image_size, spec.image_size),
            ));
        }
        Ok(Spec::Vit(spec))
    } else {
        Err(EngineError::Unsupported(format!(
            "model_cfg.vision_cfg.timm_model_name: \"{name}\" is not supported (fastvit_mci0, fastvit_mci2, \
             fastvit_mci3, fastvit_mci4, vit_base_mci_224, vit_large_patch14_clip_224 are)"
        )))
    }
}

impl VisionTower {
    /// Header-only checks of the image tower's tensors (no tensor data is read).
    pub fn check_header(weights: &Weights, cfg: &ModelConfig) -> Result<()> {
        let embed_dim = cfg.model_cfg.embed_dim;
        match spec(cfg)? {
            Spec::FastVit(s) => FastVit::check_header(weights, &s, embed_dim),
            Spec::Vit(s) => crate::vit::check_header(weights, &s, embed_dim),
        }
    }

    /// The tower from `p` (the model file or the weights cache).
    pub fn load(p: &Params, cfg: &ModelConfig) -> Result<VisionTower> {
        let embed_dim = cfg.model_cfg.embed_dim;
        let trunk = match spec(cfg)? {
            Spec::FastVit(s) => Trunk::FastVit(FastVit::load(p, &s, embed_dim)?),
            Spec::Vit(s) => Trunk::Vit(Vit::load(p, &s, embed_dim)?),
        };
        Ok(VisionTower { trunk, image_size: cfg.image_preprocess()?.size as usize })
    }

    /// `x`: [N, S, S, 3] normalised pixels. Returns [N, embed_dim]; L2-normalised if asked.
    pub fn forward(&self, x: &Array, normalize: bool) -> Result<Array> {
        self.forward_checked(x, normalize, &mut || {})
    }

    /// The most images one MLX graph should hold: a ViT block over more images than this
    /// runs longer than ~1 s on a 2-core machine (L-14: ~60 ms per image and block), which
    /// is as long as a cancel may wait; the GEMMs are already efficient at this size. FastViT
    /// runs its expensive early stages one image at a time, so it needs no lower cap than
    /// the pixel bound.
    pub fn max_batch(&self) -> usize {
        match &self.trunk {
            Trunk::FastVit(_) => usize::MAX,
            Trunk::Vit(_) => 16,
        }
    }

    /// An upper bound of the memory a forward pass over `n` images needs beyond the weights,
    /// their pixels included (what the engine reserves before it runs one; footprint.rs).
    pub fn activation_bytes(&self, n: usize) -> usize {
        let pixels = n.saturating_mul(self.image_size * self.image_size * 3 * 4);
        let trunk = match &self.trunk {
            Trunk::FastVit(t) => t.activation_bytes(n, self.image_size),
            Trunk::Vit(t) => t.activation_bytes(n),
        };
        pixels.saturating_add(trunk)
    }

    /// `forward`, evaluated in pieces (FastViT: the stem and each block, per image in the
    /// early stages; ViT: each block), calling `checkpoint` after each: the extension's
    /// cancellation check, so a cancel waits for one piece, not for the batch. Same
    /// arithmetic as `forward`.
    pub fn forward_checked(&self, x: &Array, normalize: bool, checkpoint: &mut dyn FnMut()) -> Result<Array> {
        let s = self.image_size as i32;
        let shape = x.shape();
        if shape.len() != 4 || shape[0] < 1 || shape[1] != s || shape[2] != s || shape[3] != 3 {
            return Err(EngineError::InvalidInput(format!("pixels of shape {shape:?}, expected [N, {s}, {s}, 3]")));
        }
        let mut tap = |_: &str, y: &Array| -> Result<()> {
            y.eval()?;
            checkpoint();
            Ok(())
        };
        let out = match &self.trunk {
            Trunk::FastVit(t) => t.run(x, &mut tap)?,
            Trunk::Vit(t) => t.run(x, &mut tap)?,
        };
        if normalize {
            nn::l2_normalize(&out)
        } else {
            Ok(out)
        }
    }
}
