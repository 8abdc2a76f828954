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

/// The shape of a stack of pre-norm transformer blocks over sequences of `tokens`.
pub struct Blocks {
    pub tokens: usize,
    pub width: usize,
    pub mlp: usize,
    pub heads: usize,
}

/// Floats one pre-norm transformer block holds at its peak for `n` sequences of `t` tokens:
/// per sequence the residual stream, its norm, the qkv projection, the attention output,
/// the projection and the MLP hidden; and the attention kernel's scores, one head at a time
/// per thread (`kernels::attention_scratch_floats`; off the CPU MLX's attention holds every
/// head's: counted as 3 heads x t x t per sequence there).
fn block_floats(n: usize, t: usize, width: usize, mlp: usize, heads: usize, threads: usize) -> usize {
    n.saturating_mul(t * (10 * width + 2 * mlp)).saturating_add(scores_floats(n, t, width, heads, threads))
}

/// The attention scores of `n` sequences of `t` tokens at their peak.
fn scores_floats(n: usize, t: usize, width: usize, heads: usize, threads: usize) -> usize {
    if crate::kernels::on_cpu() {
        threads.saturating_mul(crate::kernels::attention_scratch_floats(t, width / heads.max(1)))
    } else {
        n.saturating_mul(3 * heads * t * t)
    }
}

/// A transformer tower over `n` sequences (text towers).
pub fn transformer(n: usize, b: &Blocks, threads: usize) -> usize {
    with_margin(block_floats(n, b.tokens, b.width, b.mlp, b.heads, threads))
}

/// A ViT image tower: its stem (at stride 4, `stem_width` channels, plus the input) and
/// then the blocks.
pub fn vit(n: usize, image_size: usize, stem_width: usize, b: &Blocks, threads: usize) -> usize {
    let s4 = image_size / 4;
    let stem = 3 * image_size * image_size + 2 * s4 * s4 * stem_width;
    with_margin(n.saturating_mul(stem).max(block_floats(n, b.tokens, b.width, b.mlp, b.heads, threads)))
}

/// A FastViT image tower over `n` images of `image_size`: the stem and the early stages run
/// one image at a time (their largest piece, once), and every image's output of them is
/// kept for the later stages, which run on the whole batch (the largest of them).
/// `stages`: (resolution, width, attention) per stage; `threads`: the kernel layer's.
pub fn fastvit(n: usize, image_size: usize, stages: &[(usize, usize, bool)], early: usize, mlp_ratio: usize, threads: usize) -> usize {
    // A stage over `images` images at once.
    let stage = |&(res, w, attn): &(usize, usize, bool), images: usize| {
        let rows = images.saturating_mul(res * res);
        // Input, mixer output, the MLP's depthwise conv, output and residuals.
        let mut f = rows.saturating_mul(6 * w);
        // The MLP's hidden activations: the kernel's working memory (kernels::mlp_scratch_floats).
        f = f.saturating_add(crate::kernels::mlp_scratch_floats(rows, w, w * mlp_ratio, threads));
        if attn {
            // The qkv projection, the attention output and the scores.
            let (tokens, heads) = (res * res, w / crate::fastvit::spec::HEAD_DIM);
            f = f.saturating_add(images.saturating_mul(4 * tokens * w)).saturating_add(scores_floats(images, tokens, w, heads, threads));
        }
        f
    };
    let (s2, s4) = (image_size / 2, image_size / 4);
    // The stem: the input, its first (stride 2) and second (stride 2) conv, the 1x1 conv.
    let stem = 3 * image_size * image_size + s2 * s2 * stages[0].1 + 2 * s4 * s4 * stages[0].1;
    let per_image = stages[..early].iter().map(|s| stage(s, 1)).max().unwrap_or(0).max(stem);
    // Each image's output of the early stages, and the batch they are joined into.
    let kept = stages[..early].last().map_or(0, |&(res, w, _)| 2 * res * res * w);
    let late = stages[early..].iter().map(|s| stage(s, n)).max().unwrap_or(0);
    with_margin(per_image.saturating_add(n.saturating_mul(kept)).saturating_add(late))
}
