//! The text tower of every MobileCLIP2 variant (open_clip `TextTransformer`), driven by the
//! config: width, heads, layers, causal mask or none. Token ids in, L2-normalised embeddings out.
//!
//! x = tok_emb[ids] + pos_emb; per block x += out(MHA(ln_1 x)); x += c_proj(gelu(c_fc(ln_2 x)));
//! ln_final; pool the row at the largest token id (EOT); @ text_projection; L2 normalise.

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::Array;

use crate::config::TextCfg;
use crate::error::{EngineError, Result};
use crate::nn::{self, EncoderBlock, Linear, Norm};
use crate::params::Params;
use crate::weights::{Inventory, Weights};

/// LayerNorm eps of open_clip's text tower (torch default).
const LN_EPS: f32 = 1e-5;
const PREFIX: &str = "text.";

pub struct TextTower {
    cfg: TextCfg,
    token_embedding: Array,
    positional_embedding: Array,
    blocks: Vec<EncoderBlock>,
    ln_final: Norm,
    projection: Array,
}

/// Every tensor the text tower of `cfg` reads, with its shape (training form = inference form).
pub fn expected_keys(cfg: &TextCfg, embed_dim: usize) -> Vec<(String, Vec<usize>)> {
    let (w, ctx, v, h) = (cfg.width, cfg.context_length, cfg.vocab_size, cfg.mlp_width());
    let mut keys = vec![("text.token_embedding.weight".to_string(), vec![v, w]), ("text.positional_embedding".to_string(), vec![ctx, w])];
    for i in 0..cfg.layers {
        let p = format!("text.transformer.resblocks.{i}.");
        for (name, shape) in [
            ("ln_1.weight", vec![w]),
            ("ln_1.bias", vec![w]),
            ("attn.in_proj_weight", vec![3 * w, w]),
            ("attn.in_proj_bias", vec![3 * w]),
            ("attn.out_proj.weight", vec![w, w]),
            ("attn.out_proj.bias", vec![w]),
            ("ln_2.weight", vec![w]),
            ("ln_2.bias", vec![w]),
            ("mlp.c_fc.weight", vec![h, w]),
            ("mlp.c_fc.bias", vec![h]),
            ("mlp.c_proj.weight", vec![w, h]),
            ("mlp.c_proj.bias", vec![w]),
        ] {
            keys.push((format!("{p}{name}"), shape));
        }
    }
    keys.push(("text.ln_final.weight".into(), vec![w]));
    keys.push(("text.ln_final.bias".into(), vec![w]));
    keys.push(("text.text_projection".into(), vec![w, embed_dim]));
    keys
}

fn inventory(cfg: &TextCfg, embed_dim: usize) -> Inventory {
    Inventory::new(expected_keys(cfg, embed_dim))
}

/// Header-only checks of the text tower's tensors: every inventory key with its shape and a
/// float dtype, and no `text.*` key the config does not explain. No tensor data is read.
pub fn check_header(weights: &Weights, cfg: &TextCfg, embed_dim: usize) -> Result<()> {
    inventory(cfg, embed_dim).check(weights, PREFIX, "text", "the file does not match open_clip_config.json", |_| false)
}

impl TextTower {
    /// The tower from `p` (the model file or the weights cache). Every key, shape and dtype
    /// is checked before any tensor is read; shapes come from the inventory.
    pub fn load(p: &Params, cfg: &TextCfg, embed_dim: usize) -> Result<Self> {
        let inv = inventory(cfg, embed_dim);
        inv.check(p.src(), PREFIX, "text", "the file does not match open_clip_config.json", |_| false)?;
        let a = |k: &str| p.tensor(k, inv.shape(k)?);
        let lin = |w: &str, b: &str| Linear::packed_from(p, w, inv.shape(w)?, b);
        let mut blocks = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let b = |name: &str| format!("text.transformer.resblocks.{i}.{name}");
            blocks.push(EncoderBlock {
                norm1: Norm::layer(a(&b("ln_1.weight"))?, a(&b("ln_1.bias"))?, LN_EPS),
                qkv: lin(&b("attn.in_proj_weight"), &b("attn.in_proj_bias"))?,
                proj: lin(&b("attn.out_proj.weight"), &b("attn.out_proj.bias"))?,
                norm2: Norm::layer(a(&b("ln_2.weight"))?, a(&b("ln_2.bias"))?, LN_EPS),
                fc1: lin(&b("mlp.c_fc.weight"), &b("mlp.c_fc.bias"))?,
                fc2: lin(&b("mlp.c_proj.weight"), &b("mlp.c_proj.bias"))?,
            });
        }
        Ok(TextTower {
            cfg: cfg.clone(),
            token_embedding: a("text.token_embedding.weight")?,
            positional_embedding: a("text.positional_embedding")?,
            blocks,
            ln_final: Norm::layer(a("text.ln_final.weight")?, a("text.ln_final.bias")?, LN_EPS),
            projection: a("text.text_projection")?,
        })
    }

    /// `ids`: `batch` rows of `context_length` token ids. Returns [batch, embed_dim],
    /// L2-normalised (normalize = false gives open_clip's unnormalised features).
    pub fn forward(&self, ids: &[i32], batch: usize, normalize: bool) -> Result<Array> {
        self.forward_checked(ids, batch, normalize, &mut || {})
    }

    /// An upper bound of the memory a forward pass over `n` texts of `positions` run
    /// positions needs beyond the weights (reserved before each forward; footprint.rs).
    pub fn activation_bytes(&self, n: usize, positions: usize) -> usize {
        let c = &self.cfg;
        let blocks = crate::footprint::Blocks { tokens: positions, width: c.width, mlp: c.mlp_width(), heads: c.heads };
        crate::footprint::transformer(n, &blocks, crate::kernels::threads())
    }

    /// The pooled position of each row of `ids` (rows of `context_length`): the largest token
    /// id, first occurrence (torch argmax), normally EOT.
    fn pooled(&self, ids: &[i32]) -> Vec<usize> {
        ids.chunks(self.cfg.context_length.max(1))
            .map(|row| {
                let mut best = 0usize;
                for (i, &t) in row.iter().enumerate() {
                    if t > row[best] {
                        best = i;
                    }
                }
                best
            })
            .collect()
    }

    /// The positions a forward pass over `ids` runs: with a causal mask (MobileCLIP2-B), token
    /// i only sees tokens <= i, so the positions after the last pooled one cannot change any
    /// pooled row and are not computed (exact; a 12-token caption runs 12 positions instead
    /// of 77). Without the mask every position attends to the padding, and all of them run.
    pub fn positions(&self, ids: &[i32]) -> usize {
        self.positions_of(&self.pooled(ids))
    }

    /// `positions` from the pooled positions `best`.
    fn positions_of(&self, best: &[usize]) -> usize {
        let ctx = self.cfg.context_length;
        if self.cfg.causal() {
            best.iter().max().map_or(ctx, |&m| m + 1)
        } else {
            ctx
        }
    }

    /// `forward`, evaluated block by block, calling `checkpoint` after each (the
    /// extension's cancellation check). Same arithmetic.
    pub fn forward_checked(&self, ids: &[i32], batch: usize, normalize: bool, checkpoint: &mut dyn FnMut()) -> Result<Array> {
        let ctx = self.cfg.context_length;
        if ids.len() != batch * ctx || batch == 0 {
            return Err(EngineError::InvalidInput(format!("{} token ids for a batch of {batch} x {ctx}", ids.len())));
        }
        let vocab = self.cfg.vocab_size as i32;
        if let Some(bad) = ids.iter().find(|&&t| t < 0 || t >= vocab) {
            return Err(EngineError::InvalidInput(format!("token id {bad} outside the vocabulary (0..{vocab})")));
        }
        let (w, heads) = (self.cfg.width as i32, self.cfg.heads as i32);
        let best = self.pooled(ids);
        let keep = self.positions_of(&best);
        // Before MLX allocates: a failed MLX allocation is a crash, this an error.
        let _room = crate::runtime::reserve(self.activation_bytes(batch, keep), &format!("a batch of {batch} texts"))?;
        let (b, l) = (batch as i32, keep as i32);
        let kept: Vec<i32> = ids.chunks(ctx).flat_map(|row| row[..keep].iter().copied()).collect();
        let ids_arr = Array::from_slice(&kept, &[b * l]);
        let mut x = self.token_embedding.take_axis(&ids_arr, 0)?.reshape(&[b, l, w])?;
        let pos = if keep == ctx { self.positional_embedding.clone() } else { self.positional_embedding.try_index(0..l)? };
        x = x.add(&pos)?;
        let rows: Vec<i32> = best.iter().enumerate().map(|(r, &i)| (r * keep + i) as i32).collect();
        let rows = Array::from_slice(&rows, &[b]);
        // Every block but the last on all tokens; the last block past its attention, and the
        // final LayerNorm, only on the pooled rows (both are per token: exact).
        let (last, body) = self.blocks.split_last().ok_or_else(|| EngineError::Model("text tower without blocks".into()))?;
        for blk in body {
            x = blk.forward(&x, heads, self.cfg.causal())?;
            x.eval()?;
            checkpoint();
        }
        let pooled = self.ln_final.forward(&last.forward_rows(&x, heads, self.cfg.causal(), &rows)?)?;
        let out = pooled.matmul(&self.projection)?;
        if normalize {
            nn::l2_normalize(&out)
        } else {
            Ok(out)
        }
    }
}
