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
        // text (77 tokens, causal as B's, and not, as the other towers'), ViT-B (197) and L-14
        // (257: two K blocks in p v), FastViT's heads of 32, a tiny odd head, a sequence long
        // enough to pack A (>= 512)
        [
            (1, 8, 77, 64, true),
            (16, 8, 77, 64, true),
            (2, 12, 77, 64, false),
            (2, 12, 197, 64, false),
            (1, 16, 257, 64, false),
            (3, 2, 64, 32, false),
            (1, 1, 5, 3, true),
            (1, 2, 600, 32, true),
        ]
        .iter()
        .enumerate()
    {
        let qkv = rand(&[b, l, 3 * h * d], 400 + 10 * i as u64, 2.0);
        let got = multi_head_attention(&qkv, h, causal).unwrap();
        let want = reference::multi_head_attention(&qkv, h, causal).unwrap();
        let dd = max_rel_diff(&got, &want);
        assert!(dd < 2e-6, "case {i}: {dd}");
    }
    // A NaN in a key poisons every query's row of its head (all NaN, as MLX's softmax); an
    // infinite key gives NaN or a one-hot row as MLX's does; other heads stay finite.
    let (l, h, d) = (6usize, 2i32, 16usize);
    for (pos, bad) in [(3usize, f32::NAN), (2, f32::INFINITY), (4, f32::NEG_INFINITY)] {
        let mut v = vals(&rand(&[1, l as i32, 3 * h * d as i32], 470, 1.0));
        let w = h as usize * d;
        v[pos * 3 * w + w + 5] = bad; // token `pos`, k of head 0
        let qkv = arr(&v, &[1, l as i32, 3 * h * d as i32]);
        for causal in [false, true] {
            let got = vals(&multi_head_attention(&qkv, h, causal).unwrap());
            let want = vals(&reference::multi_head_attention(&qkv, h, causal).unwrap());
            for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.is_nan() == w.is_nan() && (g.is_nan() || (g - w).abs() < 1e-5),
                    "{bad} at {pos}, causal {causal}, element {j}: kernel {g}, mlx {w}"
                );
            }
        }
    }
}

#[test]
fn depthwise_matches_mlx_grouped_conv() {
    init();
    // (h, w, c, k, stride, m): the towers' shapes and odd ones
    for (i, &(h, w, c, k, s, m)) in [
        (64, 64, 64, 7, 1, 1),
        (64, 64, 64, 3, 1, 1),
        // stride 1: register tiles in the middle of a row, single pixels at its edges and
        // after the last whole tile, channels past the last whole vector
        (20, 40, 24, 7, 1, 1),
        (12, 30, 33, 5, 1, 1),
        (7, 50, 16, 3, 1, 1),
        (3, 4, 16, 7, 1, 1),
        (32, 32, 128, 7, 2, 2),
        (16, 16, 256, 3, 1, 2),
        (9, 8, 5, 3, 1, 1),
        (9, 8, 4, 7, 2, 2),
        (8, 7, 3, 3, 2, 1),
        (5, 7, 2, 3, 2, 2),
        (5, 5, 3, 5, 1, 3),
        (1, 1, 4, 3, 1, 1),
        // stride 2 and multiplier 2 on the register tiles: whole tiles, the shorter ones at
        // a row's end, output channels past the last whole vector
        (13, 27, 40, 7, 2, 2),
        (11, 37, 24, 3, 2, 1),
        (10, 9, 20, 3, 1, 2),
        (9, 21, 16, 3, 2, 2),
        (15, 35, 16, 7, 2, 1),
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
        // (the stem; 83 channels = blocks of 32, 32, 16 and 3 single ones, 15 output columns =
        // pixel tiles of 4 and a short one)
        [(256, 256, 3, 64, 3, 2), (37, 29, 3, 83, 3, 2), (9, 8, 3, 6, 3, 2), (6, 7, 3, 4, 3, 1), (5, 5, 2, 3, 1, 1)]
                .iter()
                .enumerate()
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

/// GEMM tolerance: relative to max(1, |reference|), a few float32 roundings per term of K.
fn gemm_tol(k: i32) -> f32 {
    4e-7 * (k as f32).sqrt().max(4.0)
}

/// A PyTorch-layout weight [n, k] (scaled by 1 / sqrt(k)) and its packed form.
fn weight(n: i32, k: i32, seed: u64) -> (Array, Array) {
    let v: Vec<f32> = uniform((n * k) as usize, seed).iter().map(|x| x / (k as f32).sqrt()).collect();
    let shape: Vec<i32> = packed_shape(k as usize, n as usize).iter().map(|&d| d as i32).collect();
    (arr(&v, &[n, k]), arr(&pack_out_in(&v, n as usize, k as usize), &shape))
}

/// The plain chain for `act(x w^T + bias) + residual` with w in PyTorch's layout.
fn plain_linear(x: &Array, w_out_in: &Array, b: Option<&Array>, r: Option<&Array>, act: Act) -> Array {
    reference::epilogue(&x.matmul(w_out_in.transpose().unwrap()).unwrap(), None, b, r, act).unwrap()
}

#[test]
fn linear_matches_mlx_matmul_and_epilogue() {
    init();
    // (rows, K, N): FastViT's 1x1 convs, K blocks (> 256), and tails in every direction
    // (rows not a multiple of the tile height, N not a multiple of the vector width or panel),
    // row blocks dealt unevenly with a packed A (1232 x 512, 1001 x 600).
    for (i, &(rows, k, n)) in [
        (1, 1, 1),
        (7, 33, 17),
        (13, 64, 192),
        (300, 256, 48),
        (25, 300, 40),
        (50, 1536, 512),
        (1232, 512, 2048),
        (1001, 600, 100),
        (5, 3, 100),
    ]
    .iter()
    .enumerate()
    {
        let seed = 900 + 10 * i as u64;
        let x = rand(&[rows, k], seed, 2.0);
        let (w, wp) = weight(n, k, seed + 1);
        let b = rand(&[n], seed + 2, 1.0);
        let r = rand(&[rows, n], seed + 3, 1.0);
        for act in [Act::None, Act::Gelu] {
            for (use_b, use_r) in [(false, false), (true, false), (true, true), (false, true)] {
                let (bo, ro) = (use_b.then_some(&b), use_r.then_some(&r));
                let got = mobileclip_kernels::linear(&x, &wp, n as usize, bo, ro, act).unwrap();
                let want = plain_linear(&x, &w, bo, ro, act);
                let d = max_rel_diff(&got, &want);
                assert!(d < gemm_tol(k), "case {i} ({rows}x{k}x{n}) {act:?} bias {use_b} residual {use_r}: {d}");
                // the off-CPU path reads the same packed weight
                let plain = reference::linear(&x, &wp, n as usize, bo, ro, act).unwrap();
                assert!(max_rel_diff(&plain, &want) < gemm_tol(k), "case {i}: reference::linear");
            }
        }
    }
    // Leading axes are kept: [B, L, K] -> [B, L, N].
    let x = rand(&[2, 5, 8], 1, 1.0);
    let (_, wp) = weight(3, 8, 2);
    assert_eq!(mobileclip_kernels::linear(&x, &wp, 3, None, None, Act::None).unwrap().shape(), &[2, 5, 3]);
}

#[test]
fn mlp_matches_mlx_ops() {
    init();
    // (rows, C, hidden): FastViT stages (mlp ratio 3 and 4; 256 rows: one fused block per
    // thread, uneven by a partial tile), a transformer's MLP (packed A in both GEMMs; 400
    // rows: blocks rounded down to 4 of 8-9 tiles) and odd sizes.
    for (i, &(rows, c, h)) in
        [(4096, 64, 192), (1024, 128, 384), (256, 384, 1536), (64, 512, 1536), (400, 768, 3072), (37, 96, 384), (9, 5, 11)]
            .iter()
            .enumerate()
    {
        let seed = 1100 + 10 * i as u64;
        let y = rand(&[rows, c], seed, 2.0);
        let x = rand(&[rows, c], seed + 1, 1.0);
        let ((w1, w1p), b1) = (weight(h, c, seed + 2), rand(&[h], seed + 3, 1.0));
        let ((w2, w2p), b2) = (weight(c, h, seed + 4), rand(&[c], seed + 5, 1.0));
        let got = mobileclip_kernels::mlp(&y, &x, &w1p, &b1, &w2p, &b2).unwrap();
        let hid = plain_linear(&y, &w1, Some(&b1), None, Act::Gelu);
        let want = plain_linear(&hid, &w2, Some(&b2), Some(&x), Act::None);
        let d = max_rel_diff(&got, &want);
        assert!(d < gemm_tol(h), "case {i} ({rows}x{c}x{h}): {d}");
        let plain = reference::mlp(&y, &x, &w1p, &b1, &w2p, &b2).unwrap();
        assert!(max_rel_diff(&plain, &want) < gemm_tol(h), "case {i}: reference::mlp");
    }
}

#[test]
fn gemms_propagate_nan_and_inf_as_mlx() {
    init();
    let (rows, k, n) = (30, 20, 40);
    let mut xv = uniform((rows * k) as usize, 3);
    xv[5] = f32::NAN; // row 0
    xv[3 * k as usize + 7] = f32::INFINITY; // row 3
    xv[17 * k as usize] = f32::NEG_INFINITY; // row 17
    let x = arr(&xv, &[rows, k]);
    let (w, wp) = weight(n, k, 4);
    let b = rand(&[n], 5, 1.0);
    for act in [Act::None, Act::Gelu] {
        let got = mobileclip_kernels::linear(&x, &wp, n as usize, Some(&b), None, act).unwrap();
        let want = plain_linear(&x, &w, Some(&b), None, act);
        assert!(max_rel_diff(&got, &want) < gemm_tol(k), "{act:?}");
        let g = vals(&got);
        assert!(g[..n as usize].iter().all(|v| v.is_nan()));
        assert!(g[3 * n as usize..4 * n as usize].iter().all(|v| v.is_infinite() || v.is_nan()));
    }
    let xr = rand(&[rows, k], 6, 1.0);
    let ((w1, w1p), b1) = (weight(2 * k, k, 7), rand(&[2 * k], 8, 1.0));
    let ((w2, w2p), b2) = (weight(k, 2 * k, 9), rand(&[k], 10, 1.0));
    let got = mobileclip_kernels::mlp(&x, &xr, &w1p, &b1, &w2p, &b2).unwrap();
    let hid = plain_linear(&x, &w1, Some(&b1), None, Act::Gelu);
    let want = plain_linear(&hid, &w2, Some(&b2), Some(&xr), Act::None);
    assert!(max_rel_diff(&got, &want) < gemm_tol(2 * k));
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
    let m = rand(&[6, 4], 1, 1.0);
    let (_, w45) = weight(5, 4, 2);
    assert!(mobileclip_kernels::linear(&m, &weight(5, 3, 2).1, 5, None, None, Act::None).is_err());
    assert!(mobileclip_kernels::linear(&m, &w45, 40, None, None, Act::None).is_err());
    assert!(mobileclip_kernels::linear(&m, &w45, 0, None, None, Act::None).is_err());
    assert!(mobileclip_kernels::linear(&m, &rand(&[4, 5], 2, 1.0), 5, None, None, Act::None).is_err());
    assert!(mobileclip_kernels::linear(&m, &w45, 5, Some(&rand(&[4], 3, 1.0)), None, Act::None).is_err());
    assert!(mobileclip_kernels::linear(&m, &w45, 5, None, Some(&m), Act::None).is_err());
    let (w1, b1, w2, b2) = (weight(8, 4, 2).1, rand(&[8], 3, 1.0), weight(4, 8, 4).1, rand(&[4], 5, 1.0));
    assert!(mobileclip_kernels::mlp(&m, &m, &w1, &b1, &w2, &b2).is_ok());
    assert!(mobileclip_kernels::mlp(&m, &rand(&[5, 4], 1, 1.0), &w1, &b1, &w2, &b2).is_err());
    assert!(mobileclip_kernels::mlp(&m, &m, &w2, &b1, &w2, &b2).is_err());
    assert!(mobileclip_kernels::mlp(&m, &m, &w1, &b2, &w2, &b2).is_err());
    assert!(mobileclip_kernels::mlp(&m, &m, &w1, &b1, &w1, &b2).is_err());
    let ints = Array::from_slice(&[1i32, 2, 3, 4, 5, 6], &[1, 1, 6]);
    let e = mobileclip_kernels::attention(&ints, 1, false).unwrap_err();
    assert!(e.0.contains("float32"), "{e}");
    let qkv = rand(&[2, 3, 12], 1, 1.0);
    assert!(mobileclip_kernels::attention(&qkv, 2, false).is_ok());
    assert!(mobileclip_kernels::attention(&qkv, 3, false).is_err()); // width 12 is not 3 x 3 heads x d
    assert!(mobileclip_kernels::attention(&qkv, 0, false).is_err());
    assert!(mobileclip_kernels::attention(&rand(&[6, 12], 1, 1.0), 2, false).is_err());
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

/// The tests above run the widest body the CPU has (AVX-512 on the project's machines); this
/// one runs them again in child processes of this test binary with each narrower body
/// (MOBILECLIP_TILES_ISA: AVX2 + FMA, and the portable 128-bit one), which a user's CPU
/// without AVX-512 runs (their tile widths differ: 6 and 4 rows, 7- and 11-pixel depthwise
/// tiles, whose row ends once went unwritten).
#[test]
fn narrower_variants_match_mlx() {
    let forced = std::env::var("MOBILECLIP_TILES_ISA").ok();
    if let Some(isa) = forced {
        // (in a child: the variant asked for must be the one running)
        assert_eq!(mobileclip_kernels::tiles_isa(), isa);
        return;
    }
    let widest = mobileclip_kernels::tiles_isa();
    let narrower: &[&str] = match widest {
        "avx512" => &["avx2", "baseline"],
        "avx2" => &["baseline"],
        _ => &[],
    };
    let exe = std::env::current_exe().unwrap();
    for isa in narrower {
        let out = std::process::Command::new(&exe)
            .args(["kernels::tests::", "--test-threads=1", "--quiet"])
            .env("MOBILECLIP_TILES_ISA", isa)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "kernel tests with the {isa} body failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
        // (all of them ran: the same count as here, this one included)
        assert!(text.contains("test result: ok."), "{isa}: {text}");
    }
}

/// Inputs that are not row-contiguous (a transposed or broadcast view, lazy or evaluated), a
/// row-contiguous slice at an offset, and the output of one kernel fed to the next (which go
/// in without a copy: primitives.cpp, prep) are read as the values they hold.
#[test]
fn views_and_chained_kernels_are_read_as_their_values() {
    use mlx_rs::ops::indexing::TryIndexOp;
    init();
    let (rows, c) = (37, 70);
    let base = rand(&[c, rows], 900, 3.0);
    let lazy_t = base.transpose().unwrap();
    let done_t = base.transpose().unwrap();
    done_t.eval().unwrap();
    let row = rand(&[1, c], 901, 2.0);
    let bcast = mlx_rs::ops::broadcast_to(&row, &[rows, c]).unwrap();
    let big = rand(&[rows + 3, c], 902, 2.0);
    let slice = big.try_index(2..rows + 2).unwrap();
    slice.eval().unwrap();
    let chained = mobileclip_kernels::epilogue(&big.try_index(1..rows + 1).unwrap(), None, None, None, Act::Gelu).unwrap();
    let b = rand(&[c], 903, 1.0);
    let r = rand(&[rows, c], 904, 1.0);
    let w = rand(&[c], 905, 1.0);
    for (name, x) in [
        ("lazy transpose", &lazy_t),
        ("evaluated transpose", &done_t),
        ("broadcast", &bcast),
        ("slice", &slice),
        ("kernel output", &chained),
    ] {
        for act in [Act::None, Act::Gelu] {
            let got = mobileclip_kernels::epilogue(x, None, Some(&b), Some(&r), act).unwrap();
            let want = reference::epilogue(x, None, Some(&b), Some(&r), act).unwrap();
            assert_eq!(max_rel_diff(&got, &want), 0.0, "{name} {act:?}");
            // (and as the residual)
            let got = mobileclip_kernels::epilogue(&r, None, None, Some(x), act).unwrap();
            let want = reference::epilogue(&r, None, None, Some(x), act).unwrap();
            assert_eq!(max_rel_diff(&got, &want), 0.0, "{name} as residual {act:?}");
        }
        let got = mobileclip_kernels::layer_norm(x, &w, &b, 1e-5).unwrap();
        let want = mlx_rs::fast::layer_norm(x, &w, &b, 1e-5).unwrap();
        let d = max_rel_diff(&got, &want);
        assert!(d < 2e-6, "{name}: layer norm {d}");
    }
}
