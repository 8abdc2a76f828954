//! Convolutions for the FastViT towers on MLX CPU, NHWC, symmetric zero padding k/2 (timm's
//! `create_conv2d` default for odd k, stride 1 and 2 alike).
//!
//! MLX's grouped `conv2d` runs at ~0.7 GFLOP/s on CPU (notes/mlx-on-linux.md §12), so every
//! depthwise conv here is shifted multiply-adds on slices; 1x1 convs are GEMMs on
//! [N*H*W, C]; the one dense k x k conv (stem.0, 3 input channels) is im2col + GEMM.
//!
//! Host-side helpers convert PyTorch kernel layouts ([out, in/groups, k, k]) to the layouts
//! the forward functions take.

use mlx_rs::ops::indexing::{IntoStrideBy, TryIndexOp};
use mlx_rs::Array;

use crate::error::{EngineError, Result};
use crate::nn::Linear;

/// Output size of a conv with kernel `k` (odd), padding k/2, `stride`.
pub fn out_size(n: usize, k: usize, stride: usize) -> usize {
    (n + 2 * (k / 2) - k) / stride + 1
}

fn dims(x: &Array) -> Result<[i32; 4]> {
    match x.shape() {
        &[n, h, w, c] => Ok([n, h, w, c]),
        s => Err(EngineError::InvalidInput(format!("conv: input {s:?} is not NHWC"))),
    }
}

/// Depthwise conv with channel multiplier: input channel c feeds outputs c*m .. c*m + m - 1
/// (PyTorch `groups = C_in`, `C_out = m * C_in`, weight [C_out, 1, k, k]; with m = 2 this is
/// the downsample / final_conv "each input channel feeds two outputs" case).
///
/// `x`: [N, H, W, C]; `weight`: [k, k, C, m] (see [`depthwise_taps`]); `bias`: [C*m].
/// Returns [N, Ho, Wo, C*m].
///
/// Each tap multiplies a (strided) window of the padded input by its weights and adds: the
/// window is a view, the multiply reads it with strides; m > 1 broadcasts [.., C, 1] x [C, m],
/// which yields the PyTorch output-channel order c*m + j directly (no repeat, no interleave).
pub fn depthwise(x: &Array, weight: &Array, bias: Option<&Array>, stride: usize) -> Result<Array> {
    let ws = weight.shape();
    if let (&[n, h, w, c], &[k, k2, wc, 1]) = (x.shape(), ws) {
        // k x k stride 1: as GEMMs where measured faster (7x7 always, 3x3 on narrow maps)
        if stride == 1
            && !SHIFT_MAD_ONLY.load(std::sync::atomic::Ordering::Relaxed)
            && k == k2
            && k % 2 == 1
            && wc == c
            && (k >= 7 || (k >= 3 && w <= TILE))
        {
            let y = depthwise_gemm(x, weight, [n, h, w, c], k)?;
            return match bias {
                Some(b) => Ok(y.add(b)?),
                None => Ok(y),
            };
        }
    }
    depthwise_banded(x, weight, bias, stride, CACHE_ELEMS)
}

/// Benchmarks only: run every depthwise conv as shifted multiply-adds (A/B timings).
#[doc(hidden)]
pub static SHIFT_MAD_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Output columns per tile of [`depthwise_gemm`].
const TILE: i32 = 16;

/// Depthwise k x k conv, stride 1, multiplier 1, as batched GEMMs (MLX's elementwise ops are
/// single-threaded and unfused on CPU; its GEMMs run in BLAS on every core).
///
/// Channels first, the width cut into tiles of T = 16 output columns: for each kernel row dy,
/// output rows of a tile are `x[c, y + dy, tile columns + (0..T+k-1)] @ B[dy][c]`, where
/// B[dy][c] is the banded [T+k-1, T] matrix with B[i][j] = w[dy][i - j][c] (0 <= i - j < k).
/// So: one copy into [N, C, tiles, H+k-1, T+k-1] (padded, overlapping tiles), k batched
/// GEMMs (batch N x C x tiles) over row-shifted views of it, k-1 adds, one transpose back.
/// The bands are built per call by one small GEMM of the taps with a constant one-hot matrix
/// (exact: every entry is a tap times 1 plus zeros), so no per-width weights are kept.
/// Measured (1 image, ms): 7x7 64x64x64 4.97 -> 2.39, 32x32x128 2.39 -> 1.30, 16x16x256
/// 4.08 -> 0.56; 3x3 16x16x256 at batch 16 22.9 -> 3.8 (3x3 on wide maps: no gain).
fn depthwise_gemm(x: &Array, weight: &Array, [n, h, w, c]: [i32; 4], k: i32) -> Result<Array> {
    let p = k / 2;
    let t = if w <= TILE { w } else { TILE };
    let tp = t + k - 1;
    let nt = (w + t - 1) / t;
    // one-hot E[dx][i * T + j] = (i == j + dx); bands[dy][c] = taps[dy][c][..] @ E
    let mut e = vec![0f32; (k * tp * t) as usize];
    for dx in 0..k {
        for j in 0..t {
            e[(dx * tp * t + (j + dx) * t + j) as usize] = 1.0;
        }
    }
    let e = Array::from_slice(&e, &[k, tp * t]);
    let taps = weight.reshape(&[k, k, c])?.transpose_axes(&[0, 2, 1])?.reshape(&[k * c, k])?;
    let bands = taps.matmul(&e)?.reshape(&[k, c, 1, tp, t])?;
    let xt = mlx_rs::ops::pad(&x.transpose_axes(&[0, 3, 1, 2])?, &[(0, 0), (0, 0), (p, p), (p, p + nt * t - w)][..], None, None)?;
    let tiles = if nt == 1 {
        xt.expand_dims(2)?
    } else {
        let v: Vec<Array> = (0..nt).map(|i| xt.try_index((.., .., .., i * t..i * t + tp))).collect::<std::result::Result<_, _>>()?;
        mlx_rs::ops::stack(&v, 2)?
    };
    let mut acc: Option<Array> = None;
    for dy in 0..k {
        let m = tiles.try_index((.., .., .., dy..dy + h, ..))?.matmul(&bands.try_index(dy)?)?;
        acc = Some(match acc {
            None => m,
            Some(a) => a.add(&m)?,
        });
    }
    let y = acc.ok_or_else(|| EngineError::InvalidInput("depthwise: empty kernel".into()))?;
    // [N, C, tiles, H, T] -> [N, H, tiles, T, C]
    let y = y.transpose_axes(&[0, 3, 2, 4, 1])?.reshape(&[n, h, nt * t, c])?;
    Ok(if nt * t == w { y } else { y.try_index((.., .., 0..w, ..))? })
}

fn depthwise_banded(x: &Array, weight: &Array, bias: Option<&Array>, stride: usize, band_elems: usize) -> Result<Array> {
    let [n, h, w, c] = dims(x)?;
    let ws = weight.shape();
    if ws.len() != 4 || ws[0] != ws[1] || ws[0] % 2 == 0 || ws[2] != c || stride == 0 {
        return Err(EngineError::InvalidInput(format!(
            "depthwise: weight {ws:?} does not fit input {:?} (want [k, k, C, m], k odd), stride {stride}",
            x.shape()
        )));
    }
    let (k, m) = (ws[0] as usize, ws[3]);
    let p = (k / 2) as i32;
    let s = stride as i32;
    let ho = out_size(h as usize, k, stride) as i32;
    let wo = out_size(w as usize, k, stride) as i32;
    let padded = mlx_rs::ops::pad(x, &[(0, 0), (p, p), (p, p), (0, 0)][..], None, None)?;
    // m == 1: taps are [C] rows multiplying [N, Ho, Wo, C]; m > 1: the window gets a unit axis.
    let padded = if m == 1 { padded } else { padded.expand_dims(-1)? };
    let taps: Vec<Array> = (0..k as i32)
        .flat_map(|dy| (0..k as i32).map(move |dx| (dy, dx)))
        .map(|(dy, dx)| if m == 1 { weight.try_index((dy, dx, .., 0)) } else { weight.try_index((dy, dx)) })
        .collect::<std::result::Result<_, _>>()?;
    // Bands of output rows (see CACHE_ELEMS), concatenated.
    let band = band_rows(n as usize, wo as usize, (c * m) as usize, band_elems);
    let mut bands = Vec::new();
    let mut r0 = 0;
    while r0 < ho {
        let r1 = (r0 + band as i32).min(ho);
        let mut acc: Option<Array> = None;
        for dy in 0..k as i32 {
            for dx in 0..k as i32 {
                let rows = (r0 * s + dy..r0 * s + dy + s * (r1 - r0 - 1) + 1).stride_by(s);
                let cols = (dx..dx + s * (wo - 1) + 1).stride_by(s);
                let window = padded.try_index((.., rows, cols))?;
                let term = window.multiply(&taps[(dy * k as i32 + dx) as usize])?;
                acc = Some(match acc {
                    None => term,
                    Some(a) => a.add(&term)?,
                });
            }
        }
        bands.push(acc.ok_or_else(|| EngineError::InvalidInput("depthwise: empty kernel".into()))?);
        r0 = r1;
    }
    let out = if bands.len() == 1 { bands.remove(0) } else { mlx_rs::ops::concatenate(&bands, 1)? };
    let out = if m == 1 { out } else { out.reshape(&[n, ho, wo, c * m])? };
    match bias {
        Some(b) => Ok(out.add(b)?),
        None => Ok(out),
    }
}

/// Largest intermediate (elements) that the depthwise bands and `row_chunked` chunks aim for.
///
/// Why chunking at all: on MLX CPU eager a GELU over 0.4M elements cost 3.5 ns/element, over
/// 6.3M elements 14 ns/element (each of its ~30 ops streams its operands from memory). But
/// cutting maps into ~64K-element chunks did not speed up the S0 tower here (batch 1 equal,
/// batch 16 slower; MLX's evaluation order does not finish one chunk's chain before the
/// next), so the chunks are now only a bound on the size of single intermediates for large
/// batches (64 MB); what does help, running the high-resolution stages image by image, is in
/// `fastvit::FastVit::run`.
pub const CACHE_ELEMS: usize = 1 << 24;

/// Output rows per band of a depthwise conv producing [n, _, wo, c]: about `band_elems`.
fn band_rows(n: usize, wo: usize, c: usize, band_elems: usize) -> usize {
    (band_elems / (n * wo * c).max(1)).max(1)
}

/// Applies `f` to row chunks of 2-D arrays of equal row count and concatenates the results:
/// a chain of element-wise ops and GEMMs over a chunk then runs in cache. Chunks keep at least
/// `min_rows` rows so that GEMMs still amortise reading their weights.
pub fn row_chunked(xs: &[&Array], row_elems: usize, min_rows: usize, f: impl Fn(&[Array]) -> Result<Array>) -> Result<Array> {
    let rows = xs.first().map_or(0, |x| x.shape()[0]);
    let chunk = (CACHE_ELEMS / row_elems.max(1)).max(min_rows).max(1) as i32;
    if rows <= chunk {
        return f(&xs.iter().map(|&x| x.clone()).collect::<Vec<_>>());
    }
    let mut outs = Vec::new();
    let mut r0 = 0;
    while r0 < rows {
        let r1 = (r0 + chunk).min(rows);
        let part: Vec<Array> = xs.iter().map(|x| x.try_index(r0..r1)).collect::<std::result::Result<_, _>>()?;
        outs.push(f(&part)?);
        r0 = r1;
    }
    Ok(mlx_rs::ops::concatenate(&outs, 0)?)
}

/// 1x1 conv (stride 1) as one GEMM over [N*H*W, C].
pub fn pointwise(x: &Array, lin: &Linear) -> Result<Array> {
    let [n, h, w, c] = dims(x)?;
    let y = lin.forward(&x.reshape(&[n * h * w, c])?)?;
    let o = *y.shape().last().unwrap_or(&0);
    Ok(y.reshape(&[n, h, w, o])?)
}

/// Dense k x k conv (groups 1) as im2col + GEMM: the k*k strided windows are concatenated
/// along channels in (ky, kx, c) order and multiplied by `weight` [k*k*C, O] (see
/// [`dense_im2col`]). Meant for few input channels (stem.0 has 3), where the column matrix
/// is small. `then` runs on row chunks of the [N*Ho*Wo, O] result (e.g. the activation),
/// in cache.
pub fn dense(
    x: &Array,
    weight: &Array,
    bias: Option<&Array>,
    k: usize,
    stride: usize,
    then: impl Fn(Array) -> Result<Array>,
) -> Result<Array> {
    let [n, h, w, c] = dims(x)?;
    let ws = weight.shape();
    if k.is_multiple_of(2) || stride == 0 || ws.len() != 2 || ws[0] as usize != k * k * c as usize {
        return Err(EngineError::InvalidInput(format!("dense conv: weight {ws:?} does not fit input {:?} with k = {k}", x.shape())));
    }
    let p = (k / 2) as i32;
    let s = stride as i32;
    let ho = out_size(h as usize, k, stride) as i32;
    let wo = out_size(w as usize, k, stride) as i32;
    let padded = mlx_rs::ops::pad(x, &[(0, 0), (p, p), (p, p), (0, 0)][..], None, None)?;
    let mut cols = Vec::with_capacity(k * k);
    for dy in 0..k as i32 {
        for dx in 0..k as i32 {
            let rows = (dy..dy + s * (ho - 1) + 1).stride_by(s);
            let cs = (dx..dx + s * (wo - 1) + 1).stride_by(s);
            cols.push(padded.try_index((.., rows, cs))?);
        }
    }
    let col = mlx_rs::ops::concatenate(&cols, 3)?.reshape(&[n * ho * wo, (k * k) as i32 * c])?;
    let y = row_chunked(&[&col], ws[1] as usize, 256, |p| {
        let y = p[0].matmul(weight)?;
        then(match bias {
            Some(b) => y.add(b)?,
            None => y,
        })
    })?;
    Ok(y.reshape(&[n, ho, wo, ws[1]])?)
}

/// PyTorch depthwise kernel [C*m, 1, k, k] (flat) to the [k, k, C, m] layout of [`depthwise`].
pub fn depthwise_taps(w: &[f32], cin: usize, m: usize, k: usize) -> Result<Array> {
    let out = cin * m;
    if w.len() != out * k * k {
        return Err(EngineError::Model(format!("depthwise kernel of {} values, expected {out}x1x{k}x{k}", w.len())));
    }
    let mut t = vec![0f32; w.len()];
    for o in 0..out {
        for tap in 0..k * k {
            t[tap * out + o] = w[o * k * k + tap];
        }
    }
    Ok(Array::from_slice(&t, &[k as i32, k as i32, cin as i32, m as i32]))
}

/// PyTorch dense kernel [O, C, k, k] (flat) to the [k*k*C, O] im2col matrix of [`dense`].
pub fn dense_im2col(w: &[f32], out: usize, cin: usize, k: usize) -> Result<Array> {
    if w.len() != out * cin * k * k {
        return Err(EngineError::Model(format!("conv kernel of {} values, expected {out}x{cin}x{k}x{k}", w.len())));
    }
    let mut t = vec![0f32; w.len()];
    for o in 0..out {
        for ci in 0..cin {
            for tap in 0..k * k {
                t[(tap * cin + ci) * out + o] = w[(o * cin + ci) * k * k + tap];
            }
        }
    }
    Ok(Array::from_slice(&t, &[(k * k * cin) as i32, out as i32]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random_model::uniform;

    fn arr(v: &[f32], s: &[usize]) -> Array {
        Array::from_slice(v, &s.iter().map(|&d| d as i32).collect::<Vec<_>>())
    }

    /// Direct f64 loop: PyTorch conv2d semantics (NHWC data, weight [O, C/g, k, k]).
    #[allow(clippy::too_many_arguments)]
    fn conv_loop(x: &[f32], [n, h, w, c]: [usize; 4], wt: &[f32], o: usize, groups: usize, k: usize, s: usize, b: &[f32]) -> Vec<f64> {
        let (ho, wo) = (out_size(h, k, s), out_size(w, k, s));
        let (cg, og) = (c / groups, o / groups);
        let p = (k / 2) as isize;
        let mut y = vec![0f64; n * ho * wo * o];
        for ni in 0..n {
            for yi in 0..ho {
                for xi in 0..wo {
                    for oc in 0..o {
                        let g = oc / og;
                        let mut acc = b.get(oc).copied().unwrap_or(0.0) as f64;
                        for ci in 0..cg {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let sy = (yi * s) as isize + ky as isize - p;
                                    let sx = (xi * s) as isize + kx as isize - p;
                                    if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
                                        continue;
                                    }
                                    let xin = x[((ni * h + sy as usize) * w + sx as usize) * c + g * cg + ci] as f64;
                                    acc += xin * wt[((oc * cg + ci) * k + ky) * k + kx] as f64;
                                }
                            }
                        }
                        y[((ni * ho + yi) * wo + xi) * o + oc] = acc;
                    }
                }
            }
        }
        y
    }

    fn max_diff(got: &Array, want: &[f64]) -> f64 {
        got.eval().unwrap();
        let g = got.try_as_slice::<f32>().unwrap();
        assert_eq!(g.len(), want.len());
        g.iter().zip(want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max)
    }

    #[test]
    fn depthwise_matches_direct_loop_for_strides_and_multipliers() {
        crate::runtime::init(Default::default()).unwrap();
        // odd and even sizes: stride 2 with padding k/2 must give ceil-like sizes as PyTorch
        for (i, &(h, w, c, k, s, m)) in [
            (9, 8, 5, 3, 1, 1),
            (9, 8, 5, 7, 1, 1),
            (9, 8, 4, 7, 2, 2),
            (8, 7, 3, 3, 2, 1),
            (6, 6, 3, 3, 1, 2),
            (5, 7, 2, 3, 2, 2),
            (33, 20, 8, 7, 1, 1),
            (41, 20, 8, 7, 2, 2),
            (12, 37, 4, 7, 1, 1),
            (5, 16, 3, 3, 1, 1),
            (4, 17, 3, 3, 1, 1),
        ]
        .iter()
        .enumerate()
        {
            let n = 2;
            let xv = uniform(n * h * w * c, 100 + i as u64);
            let wv = uniform(c * m * k * k, 200 + i as u64);
            let bv = uniform(c * m, 300 + i as u64);
            let want = conv_loop(&xv, [n, h, w, c], &wv, c * m, c, k, s, &bv);
            let wt = depthwise_taps(&wv, c, m, k).unwrap();
            let y = depthwise(&arr(&xv, &[n, h, w, c]), &wt, Some(&arr(&bv, &[c * m])), s).unwrap();
            assert_eq!(y.shape(), &[n as i32, out_size(h, k, s) as i32, out_size(w, k, s) as i32, (c * m) as i32]);
            let d = max_diff(&y, &want);
            assert!(d < 1e-5, "case {i}: max abs diff {d}");
            // several output-row bands, the last one short
            let y = depthwise_banded(&arr(&xv, &[n, h, w, c]), &wt, Some(&arr(&bv, &[c * m])), s, 2 * 3 * w * c * m).unwrap();
            let d = max_diff(&y, &want);
            assert!(d < 1e-5, "case {i}, banded: max abs diff {d}");
        }
    }

    #[test]
    fn dense_matches_direct_loop() {
        crate::runtime::init(Default::default()).unwrap();
        for (i, &(h, w, c, o, k, s)) in [(9, 8, 3, 6, 3, 2), (6, 7, 3, 4, 3, 1), (5, 5, 2, 3, 1, 1)].iter().enumerate() {
            let n = 2;
            let xv = uniform(n * h * w * c, 400 + i as u64);
            let wv = uniform(o * c * k * k, 500 + i as u64);
            let bv = uniform(o, 600 + i as u64);
            let want = conv_loop(&xv, [n, h, w, c], &wv, o, 1, k, s, &bv);
            let wt = dense_im2col(&wv, o, c, k).unwrap();
            let y = dense(&arr(&xv, &[n, h, w, c]), &wt, Some(&arr(&bv, &[o])), k, s, Ok).unwrap();
            let d = max_diff(&y, &want);
            assert!(d < 1e-5, "case {i}: max abs diff {d}");
        }
    }

    #[test]
    fn row_chunks_cover_every_row_once() {
        crate::runtime::init(Default::default()).unwrap();
        let rows = 3 * CACHE_ELEMS / (1 << 16) + 7; // 2^16 elements per row: four chunks, the last short
        let a = arr(&uniform(rows * 4, 900), &[rows, 4]);
        let b = arr(&uniform(rows * 4, 901), &[rows, 4]);
        let got = row_chunked(&[&a, &b], 1 << 16, 1, |p| Ok(p[0].multiply(&p[1])?.add(Array::from_f32(1.0))?)).unwrap();
        let want = a.multiply(&b).unwrap().add(Array::from_f32(1.0)).unwrap();
        assert_eq!(got.shape(), want.shape());
        let d: f32 = got.subtract(&want).unwrap().abs().unwrap().max(None).unwrap().try_item_exact().unwrap();
        assert_eq!(d, 0.0);
    }

    #[test]
    fn pointwise_matches_direct_loop() {
        crate::runtime::init(Default::default()).unwrap();
        let (n, h, w, c, o) = (2, 3, 5, 7, 4);
        let xv = uniform(n * h * w * c, 700);
        let wv = uniform(o * c, 701);
        let bv = uniform(o, 702);
        let want = conv_loop(&xv, [n, h, w, c], &wv, o, 1, 1, 1, &bv);
        let lin = Linear::from_torch(arr(&wv, &[o, c]), Some(arr(&bv, &[o]))).unwrap();
        let d = max_diff(&pointwise(&arr(&xv, &[n, h, w, c]), &lin).unwrap(), &want);
        assert!(d < 1e-5, "max abs diff {d}");
    }

    /// The helpers against MLX's own grouped conv2d as well (the slow path they replace).
    #[test]
    fn depthwise_matches_mlx_grouped_conv() {
        crate::runtime::init(Default::default()).unwrap();
        let (n, h, w, c, m, k, s) = (1, 10, 10, 6, 2, 7, 2);
        let xv = uniform(n * h * w * c, 800);
        let wv = uniform(c * m * k * k, 801);
        let x = arr(&xv, &[n, h, w, c]);
        // MLX weight layout [O, kh, kw, C/groups]
        let w_mlx = arr(&wv, &[c * m, 1, k, k]).transpose_axes(&[0, 2, 3, 1]).unwrap();
        let p = (k / 2) as i32;
        let want = mlx_rs::ops::conv2d(&x, &w_mlx, (s as i32, s as i32), (p, p), None, c as i32).unwrap();
        let got = depthwise(&x, &depthwise_taps(&wv, c, m, k).unwrap(), None, s).unwrap();
        let d: f32 = got.subtract(&want).unwrap().abs().unwrap().max(None).unwrap().try_item_exact().unwrap();
        assert!(d < 1e-5, "max abs diff {d}");
    }

    #[test]
    fn bad_shapes_are_errors() {
        crate::runtime::init(Default::default()).unwrap();
        let x = arr(&[0.0; 2 * 4 * 4 * 3], &[2, 4, 4, 3]);
        assert!(depthwise(&x, &arr(&[0.0; 9 * 5], &[3, 3, 5, 1]), None, 1).is_err());
        assert!(depthwise(&x, &arr(&[0.0; 9 * 3], &[3, 3, 3, 1]), None, 0).is_err());
        assert!(dense(&x, &arr(&[0.0; 10], &[5, 2]), None, 3, 1, Ok).is_err());
        assert!(depthwise_taps(&[0.0; 3], 2, 1, 3).is_err());
    }
}
