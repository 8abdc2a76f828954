//! Every kernel against the plain MLX op chain it replaces (kernels::reference), on shapes
//! the towers use and on awkward ones (odd widths, tails, strides, multipliers), plus NaN and
//! Inf propagation.

use super::*;
use crate::random_model::uniform;

fn arr(v: &[f32], s: &[i32]) -> Array {
    Array::from_slice(v, s)
}

fn rand(s: &[i32], seed: u64, scale: f32) -> Array {
    let n: i32 = s.iter().product();
    let v: Vec<f32> = uniform(n as usize, seed).iter().map(|x| x * scale).collect();
    arr(&v, s)
}

fn vals(a: &Array) -> Vec<f32> {
    a.eval().unwrap();
    a.try_as_slice::<f32>().unwrap().to_vec()
}

/// max |a - b| relative to max(1, |b|), with NaN == NaN and equal infinities required.
fn max_rel_diff(a: &Array, b: &Array) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let (x, y) = (vals(a), vals(b));
    let mut m = 0f32;
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        if q.is_nan() || p.is_nan() {
            assert!(p.is_nan() && q.is_nan(), "element {i}: kernel {p}, reference {q}");
            continue;
        }
        if q.is_infinite() || p.is_infinite() {
            assert_eq!(p, q, "element {i}");
            continue;
        }
        m = m.max((p - q).abs() / q.abs().max(1.0));
    }
    m
}

fn init() {
    crate::runtime::init(Default::default()).unwrap();
}

#[test]
fn epilogue_matches_mlx_ops() {
    init();
    for (i, &(rows, c)) in [(1, 1), (7, 33), (256, 512), (1232, 2048), (3, 1000)].iter().enumerate() {
        let s = i as u64 * 10;
        let y = rand(&[rows, c], s, 6.0);
        let b = rand(&[c], s + 1, 1.0);
        let r = rand(&[rows, c], s + 2, 1.0);
        let samples = if rows % 7 == 0 { 7 } else { 1 };
        let sc = rand(&[samples, c], s + 3, 1.0);
        for act in [Act::None, Act::Gelu] {
            for (use_s, use_b, use_r) in
                [(false, false, false), (false, true, false), (false, true, true), (true, false, false), (true, true, true)]
            {
                let (so, bo, ro) = (use_s.then_some(&sc), use_b.then_some(&b), use_r.then_some(&r));
                let got = mobileclip_kernels::epilogue(&y, so, bo, ro, act).unwrap();
                let want = reference::epilogue(&y, so, bo, ro, act).unwrap();
                let d = max_rel_diff(&got, &want);
                // Same operations in the same order: equal to the bit.
                assert_eq!(d, 0.0, "rows {rows} c {c} act {act:?} scale {use_s} bias {use_b} residual {use_r}");
            }
        }
    }
}

#[test]
fn gelu_propagates_nan_and_inf_as_mlx() {
    init();
    let x = arr(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e30, -1e30, 3.0, -3.0, 5.0, -5.7, 1e-30], &[12]);
    let got = gelu(&x).unwrap();
    let want = nn::gelu(&x).unwrap();
    assert_eq!(max_rel_diff(&got, &want), 0.0);
    let g = vals(&got);
    assert!(g[0].is_nan() && g[1] == f32::INFINITY);
}

#[test]
fn layer_norm_matches_mlx() {
    init();
    for (i, &(rows, c)) in [(1, 1), (5, 17), (77, 512), (1232, 768), (4, 1024)].iter().enumerate() {
        let x = rand(&[rows, c], 100 + i as u64, 3.0).add(Array::from_f32(0.5)).unwrap();
        let w = rand(&[c], 200 + i as u64, 1.0);
        let b = rand(&[c], 300 + i as u64, 1.0);
        let got = mobileclip_kernels::layer_norm(&x, &w, &b, 1e-5).unwrap();
        let want = mlx_rs::fast::layer_norm(&x, &w, &b, 1e-5).unwrap();
        let d = max_rel_diff(&got, &want);
        assert!(d < 2e-6, "rows {rows} c {c}: {d}");
    }
    let x = arr(&[1.0, f32::NAN, 2.0, 3.0, f32::INFINITY, 1.0], &[2, 3]);
    let w = arr(&[1.0; 3], &[3]);
    let b = arr(&[0.0; 3], &[3]);
    let got = vals(&mobileclip_kernels::layer_norm(&x, &w, &b, 1e-5).unwrap());
    let want = vals(&mlx_rs::fast::layer_norm(&x, &w, &b, 1e-5).unwrap());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.is_nan(), w.is_nan(), "kernel {got:?} mlx {want:?}");
    }
}

#[test]
fn attention_matches_mlx_sdpa() {
    init();
    for (i, &(b, h, l, d, causal)) in
        [(1, 8, 77, 64, true), (16, 8, 77, 64, true), (2, 12, 197, 64, false), (3, 2, 64, 32, false), (1, 1, 5, 3, true)].iter().enumerate()
    {
        let s = 400 + 10 * i as u64;
        let q = rand(&[b, h, l, d], s, 2.0);
        let k = rand(&[b, h, l, d], s + 1, 2.0);
        let v = rand(&[b, h, l, d], s + 2, 1.0);
        let got = attention(&q, &k, &v, causal).unwrap();
        let want = reference::attention(&q, &k, &v, causal).unwrap();
        let dd = max_rel_diff(&got, &want);
        assert!(dd < 2e-6, "case {i}: {dd}");
    }
    // softmax alone: a NaN poisons its row only; -inf scores give 0
    let x = arr(&[1.0, f32::NAN, 0.0, 2.0, f32::NEG_INFINITY, 1.0], &[1, 2, 3]);
    let got = vals(&mobileclip_kernels::softmax(&x, 1.0, false).unwrap());
    let want = vals(&mlx_rs::ops::softmax_axis(&x, -1, None).unwrap());
    for (g, w) in got.iter().zip(&want) {
        assert!(g.is_nan() == w.is_nan() && (g.is_nan() || (g - w).abs() < 1e-6), "kernel {got:?} mlx {want:?}");
    }
}

#[test]
fn depthwise_matches_mlx_grouped_conv() {
    init();
    // (h, w, c, k, stride, m): the towers' shapes and odd ones
    for (i, &(h, w, c, k, s, m)) in [
        (64, 64, 64, 7, 1, 1),
        (64, 64, 64, 3, 1, 1),
        (32, 32, 128, 7, 2, 2),
        (16, 16, 256, 3, 1, 2),
        (9, 8, 5, 3, 1, 1),
        (9, 8, 4, 7, 2, 2),
        (8, 7, 3, 3, 2, 1),
        (5, 7, 2, 3, 2, 2),
        (5, 5, 3, 5, 1, 3),
        (1, 1, 4, 3, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        let seed = 500 + 10 * i as u64;
        let x = rand(&[2, h, w, c], seed, 2.0);
        let wt = rand(&[k, k, c, m], seed + 1, 1.0);
        let b = rand(&[c * m], seed + 2, 1.0);
        for act in [Act::None, Act::Gelu] {
            let got = mobileclip_kernels::depthwise(&x, &wt, Some(&b), s as usize, act).unwrap();
            let want = reference::depthwise(&x, &wt, Some(&b), s as usize, act).unwrap();
            let d = max_rel_diff(&got, &want);
            assert!(d < 5e-6, "case {i} {act:?}: {d}");
        }
    }
    // NaN/Inf in the input reach the same outputs
    let mut xv = uniform(2 * 6 * 6 * 3, 1);
    xv[10] = f32::NAN;
    xv[50] = f32::INFINITY;
    let x = arr(&xv, &[2, 6, 6, 3]);
    let wt = rand(&[3, 3, 3, 1], 2, 1.0).abs().unwrap();
    let got = mobileclip_kernels::depthwise(&x, &wt, None, 1, Act::None).unwrap();
    let want = reference::depthwise(&x, &wt, None, 1, Act::None).unwrap();
    max_rel_diff(&got, &want);
}

#[test]
fn conv_small_matches_mlx_conv() {
    init();
    for (i, &(h, w, cin, o, k, s)) in
        [(256, 256, 3, 64, 3, 2), (9, 8, 3, 6, 3, 2), (6, 7, 3, 4, 3, 1), (5, 5, 2, 3, 1, 1)].iter().enumerate()
    {
        let seed = 700 + 10 * i as u64;
        let x = rand(&[1, h, w, cin], seed, 2.0);
        let wt = rand(&[k, k, cin, o], seed + 1, 1.0);
        let b = rand(&[o], seed + 2, 1.0);
        for act in [Act::None, Act::Gelu] {
            let got = mobileclip_kernels::conv_small(&x, &wt, Some(&b), s as usize, act).unwrap();
            let want = reference::conv_small(&x, &wt, Some(&b), s as usize, act).unwrap();
            let d = max_rel_diff(&got, &want);
            assert!(d < 5e-6, "case {i} {act:?}: {d}");
        }
    }
}

#[test]
fn bad_arguments_are_errors_not_aborts() {
    init();
    let x = rand(&[2, 4, 4, 3], 1, 1.0);
    assert!(mobileclip_kernels::depthwise(&x, &rand(&[3, 3, 5, 1], 2, 1.0), None, 1, Act::None).is_err());
    assert!(mobileclip_kernels::depthwise(&x, &rand(&[2, 2, 3, 1], 2, 1.0), None, 1, Act::None).is_err());
    assert!(mobileclip_kernels::depthwise(&x, &rand(&[3, 3, 3, 1], 2, 1.0), None, 0, Act::None).is_err());
    assert!(mobileclip_kernels::conv_small(&x, &rand(&[3, 3, 2, 4], 2, 1.0), None, 1, Act::None).is_err());
    assert!(mobileclip_kernels::epilogue(&x, None, Some(&rand(&[4], 3, 1.0)), None, Act::None).is_err());
    assert!(mobileclip_kernels::epilogue(&x, None, None, Some(&rand(&[2, 4, 4, 4], 3, 1.0)), Act::None).is_err());
    assert!(mobileclip_kernels::layer_norm(&x, &rand(&[4], 3, 1.0), &rand(&[3], 3, 1.0), 1e-5).is_err());
    let ints = Array::from_slice(&[1i32, 2, 3], &[1, 3]);
    let e = mobileclip_kernels::softmax(&ints, 1.0, false).unwrap_err();
    assert!(e.0.contains("float32"), "{e}");
}

#[test]
fn threads_setting_changes_nothing_in_the_result() {
    init();
    let x = rand(&[1232, 2048], 9, 6.0);
    let before = threads();
    set_threads(1);
    let one = vals(&gelu(&x).unwrap());
    set_threads(2);
    let two = vals(&gelu(&x).unwrap());
    set_threads(before);
    assert_eq!(one, two);
}
