//! How much memory a forward pass needs beyond the weights: the bound the engine asks
//! `runtime::reserve` for before each batch, because MLX turns a failed allocation into a
//! crash (runtime::reserve says why). Upper bounds from the tower's shapes, not exact
//! figures; tests/footprint.rs checks them against MLX's own peak-memory counter for every
//! tower of S0 and B (FastViT, ViT, causal and non-causal text), and `mobileclip bench`
//! prints both for any model.

/// A float32 activation.
const F32: usize = 4;

/// The towers evaluate block by block, so live memory is about one block's intermediates;
/// MLX frees each when its last user ran, and the kernel layer's epilogues write new
/// buffers. The margin over the sums below makes the bound safe (tests/footprint.rs).
const MARGIN_NUM: usize = 2;
const MARGIN_DEN: usize = 1;

fn with_margin(floats: usize) -> usize {
    floats.saturating_mul(F32).saturating_mul(MARGIN_NUM) / MARGIN_DEN
}

/// Floats one pre-norm transformer block holds at its peak for one sequence of `t` tokens:
/// the residual stream, its norm, the qkv projection and q/k/v views made contiguous, the
/// attention scores and probabilities of every head, the merged heads and projection, and
/// the MLP hidden.
fn block_floats(t: usize, width: usize, mlp: usize, heads: usize) -> usize {
    t * (10 * width + 2 * mlp) + 3 * heads * t * t
}

/// A transformer tower over `n` sequences of `t` tokens (text towers, ViT blocks).
pub fn transformer(n: usize, t: usize, width: usize, mlp: usize, heads: usize) -> usize {
    with_margin(n.saturating_mul(block_floats(t, width, mlp, heads)))
}

/// A ViT image tower: its stem (at stride 4, `stem_width` channels, plus the input) and
/// then the blocks over `tokens`.
pub fn vit(n: usize, image_size: usize, stem_width: usize, tokens: usize, width: usize, mlp: usize, heads: usize) -> usize {
    let s4 = image_size / 4;
    let stem = 3 * image_size * image_size + 2 * s4 * s4 * stem_width;
    with_margin(n.saturating_mul(stem.max(block_floats(tokens, width, mlp, heads))))
}

/// A FastViT image tower over `n` images of `image_size`: the stem and the early stages run
/// one image at a time (their largest piece, once), and every image's output of them is
/// kept for the later stages, which run on the whole batch (the largest of them, per image).
/// `stages`: (resolution, width, attention) per stage.
pub fn fastvit(n: usize, image_size: usize, stages: &[(usize, usize, bool)], early: usize, mlp_ratio: usize) -> usize {
    let stage = |&(res, w, attn): &(usize, usize, bool)| {
        let tokens = res * res;
        // Input, mixer output, MLP hidden (mlp_ratio) and its depthwise conv, residuals.
        let mut f = tokens * w * (mlp_ratio + 8);
        if attn {
            f += 2 * (w / crate::fastvit::spec::HEAD_DIM) * tokens * tokens + 4 * tokens * w;
        }
        f
    };
    let s2 = image_size / 2;
    // The stem: the input, then three MobileOne blocks at half resolution.
    let stem = 3 * image_size * image_size + 3 * s2 * s2 * stages[0].1;
    let per_image = stages[..early].iter().map(stage).max().unwrap_or(0).max(stem);
    // Each image's output of the early stages, and the batch they are joined into.
    let kept = stages[..early].last().map_or(0, |&(res, w, _)| 2 * res * res * w);
    let late = stages[early..].iter().map(stage).max().unwrap_or(0);
    with_margin(per_image.saturating_add(n.saturating_mul(kept + late)))
}
