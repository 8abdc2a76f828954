//! Convolution helpers for the FastViT towers, NHWC, symmetric zero padding k/2 (timm's
//! `create_conv2d` default for odd k, stride 1 and 2 alike).
//!
//! The convolutions themselves run in the kernel layer ([`crate::kernels`]: depthwise k x k
//! with any stride and channel multiplier, the 3-channel stem conv, both direct loops over
//! channels); 1x1 convs are GEMMs on [N*H*W, C] (the kernel layer's fused GEMM, [`crate::nn::Linear`]).
//! Host-side helpers here convert PyTorch kernel layouts ([out, in/groups, k, k]) to the
//! layouts the kernels take. The tests check the kernels against direct f64 loops.

use mlx_rs::Array;

use crate::error::{EngineError, Result};
#[cfg(test)]
use crate::nn::Linear;

/// Output size of a conv with kernel `k` (odd), padding k/2, `stride`.
#[cfg(test)]
pub fn out_size(n: usize, k: usize, stride: usize) -> usize {
    (n + 2 * (k / 2) - k) / stride + 1
}

#[cfg(test)]
fn dims(x: &Array) -> Result<[i32; 4]> {
    match x.shape() {
        &[n, h, w, c] => Ok([n, h, w, c]),
        s => Err(EngineError::InvalidInput(format!("conv: input {s:?} is not NHWC"))),
    }
}

/// 1x1 conv (stride 1) as one GEMM over [N*H*W, C]. The towers fuse the GELU after it
/// (`fastvit::blocks`); the block tests use this plain form.
#[cfg(test)]
pub fn pointwise(x: &Array, lin: &Linear) -> Result<Array> {
    let [n, h, w, c] = dims(x)?;
    let y = lin.forward(&x.reshape(&[n * h * w, c])?)?;
    let o = *y.shape().last().unwrap_or(&0);
    Ok(y.reshape(&[n, h, w, o])?)
}

/// PyTorch depthwise kernel [C*m, 1, k, k] (flat) to the [k, k, C, m] layout of
/// [`crate::kernels::depthwise`].
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

/// PyTorch dense kernel [O, C, k, k] (flat) to [k*k*C, O] ((tap, c) rows): the [k, k, C, O]
/// layout of [`crate::kernels::conv_small`] and the im2col matrix of the ViT patch GEMMs.
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
    use crate::kernels::{self, Act};
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
            let y = kernels::depthwise(&arr(&xv, &[n, h, w, c]), &wt, Some(&arr(&bv, &[c * m])), s, Act::None).unwrap();
            assert_eq!(y.shape(), &[n as i32, out_size(h, k, s) as i32, out_size(w, k, s) as i32, (c * m) as i32]);
            let d = max_diff(&y, &want);
            assert!(d < 1e-5, "case {i}: max abs diff {d}");
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
            let wt = dense_im2col(&wv, o, c, k).unwrap().reshape(&[k as i32, k as i32, c as i32, o as i32]).unwrap();
            let y = kernels::conv_small(&arr(&xv, &[n, h, w, c]), &wt, Some(&arr(&bv, &[o])), s, Act::None).unwrap();
            let d = max_diff(&y, &want);
            assert!(d < 1e-5, "case {i}: max abs diff {d}");
        }
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
        let got = kernels::depthwise(&x, &depthwise_taps(&wv, c, m, k).unwrap(), None, s, Act::None).unwrap();
        let d: f32 = got.subtract(&want).unwrap().abs().unwrap().max(None).unwrap().try_item_exact().unwrap();
        assert!(d < 1e-5, "max abs diff {d}");
    }

    #[test]
    fn bad_shapes_are_errors() {
        crate::runtime::init(Default::default()).unwrap();
        let x = arr(&[0.0; 2 * 4 * 4 * 3], &[2, 4, 4, 3]);
        assert!(kernels::depthwise(&x, &arr(&[0.0; 9 * 5], &[3, 3, 5, 1]), None, 1, Act::None).is_err());
        assert!(kernels::depthwise(&x, &arr(&[0.0; 9 * 3], &[3, 3, 3, 1]), None, 0, Act::None).is_err());
        assert!(kernels::conv_small(&x, &arr(&[0.0; 10], &[5, 2, 1, 1]), None, 1, Act::None).is_err());
        assert!(depthwise_taps(&[0.0; 3], 2, 1, 3).is_err());
    }
}
