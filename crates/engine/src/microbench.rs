//! Micro-benchmarks of the MLX operations the towers are made of, run in-process. Used by
//! `mobileclip bench runtime` (next to numpy on the same machine) and by the extension's
//! `clip_runtime_info(bench => true)`.

use std::time::Instant;

use mlx_rs::Array;
use serde::Serialize;

use crate::error::Result;

/// One benchmark case: what it computes, with the same description the numpy side reads.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Case {
    /// [m, k] @ [k, n]
    Matmul { m: usize, k: usize, n: usize },
    /// dense conv, NHWC input [n, h, w, cin], kernel k x k, cout outputs, stride 1, same pad
    Conv2d { n: usize, h: usize, w: usize, cin: usize, cout: usize, k: usize },
    /// depthwise conv, NHWC [n, h, w, c], kernel k x k, stride 1, same pad
    Depthwise { n: usize, h: usize, w: usize, c: usize, k: usize },
    /// softmax(q k^T / sqrt(d)) v, [b, heads, l, d]
    Attention { b: usize, heads: usize, l: usize, d: usize },
    /// [m, k] @ [k, n] + bias with the towers' GEMM: the kernel layer's register-tiled GEMM on
    /// a packed weight, bias fused (numpy: `x @ w + b`, OpenBLAS and a pass for the bias)
    Linear { m: usize, k: usize, n: usize },
}

impl Case {
    pub fn flops(&self) -> f64 {
        match *self {
            Case::Matmul { m, k, n } => 2.0 * (m * k * n) as f64,
            Case::Conv2d { n, h, w, cin, cout, k } => 2.0 * (n * h * w * cin * cout * k * k) as f64,
            Case::Depthwise { n, h, w, c, k } => 2.0 * (n * h * w * c * k * k) as f64,
            Case::Attention { b, heads, l, d } => 4.0 * (b * heads * l * l * d) as f64,
            Case::Linear { m, k, n } => 2.0 * (m * k * n) as f64,
        }
    }

    pub fn label(&self) -> String {
        match *self {
            Case::Matmul { m, k, n } => format!("matmul {m}x{k} @ {k}x{n}"),
            Case::Conv2d { n, h, w, cin, cout, k } => format!("conv2d {n}x{h}x{w}x{cin} k{k} -> {cout}"),
            Case::Depthwise { n, h, w, c, k } => format!("depthwise {n}x{h}x{w}x{c} k{k}"),
            Case::Attention { b, heads, l, d } => format!("attention {b}x{heads}x{l}x{d}"),
            Case::Linear { m, k, n } => format!("linear {m}x{k} @ {k}x{n} + bias"),
        }
    }
}

/// The runtime suite: shapes that occur in MobileCLIP2 (FastViT stages at 256 px, the text
/// transformer at 77 tokens) plus the classic 1024^3 matmul; the GEMMs the towers spend most
/// of their time in (BENCHMARKS.md): the text MLP at batch 16 (widths 512 and 768), ViT-B's
/// qkv at batch 16 (3152 rows), and S4's last stage at batch 1 (16 rows per 64 MB weight;
/// repeated here, the weight stays in L3, while a forward pass streams it from memory).
pub fn standard_suite() -> Vec<Case> {
    vec![
        Case::Matmul { m: 1024, k: 1024, n: 1024 },
        Case::Conv2d { n: 1, h: 64, w: 64, cin: 64, cout: 64, k: 3 },
        Case::Depthwise { n: 1, h: 64, w: 64, c: 64, k: 3 },
        Case::Depthwise { n: 1, h: 32, w: 32, c: 128, k: 7 },
        Case::Attention { b: 1, heads: 8, l: 256, d: 64 },
        Case::Attention { b: 16, heads: 8, l: 77, d: 64 },
        Case::Linear { m: 1232, k: 512, n: 2048 },
        Case::Linear { m: 1232, k: 768, n: 3072 },
        Case::Linear { m: 3152, k: 768, n: 2304 },
        Case::Linear { m: 16, k: 2048, n: 8192 },
    ]
}

/// Timings of one case: every timed run, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    pub case: Case,
    pub runs_ms: Vec<f64>,
}

impl Timing {
    pub fn median_ms(&self) -> f64 {
        median(&self.runs_ms)
    }
    pub fn gflops(&self) -> f64 {
        self.case.flops() / (self.median_ms() * 1e6)
    }
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn arr(shape: &[usize], seed: u64) -> Array {
    let len = shape.iter().product();
    let dims: Vec<i32> = shape.iter().map(|&d| d as i32).collect();
    Array::from_slice(&crate::rng::uniform(len, seed), &dims)
}

/// Runs `case` once to warm up, then `runs` timed times (inputs built and evaluated before).
pub fn run(case: &Case, runs: usize) -> Result<Timing> {
    crate::runtime::init(Default::default())?;
    let op: Box<dyn Fn() -> Result<Array>> = match *case {
        Case::Matmul { m, k, n } => {
            let (a, b) = (arr(&[m, k], 1), arr(&[k, n], 2));
            Box::new(move || Ok(a.matmul(&b)?))
        }
        Case::Conv2d { n, h, w, cin, cout, k } => {
            let x = arr(&[n, h, w, cin], 3);
            let wt = arr(&[cout, k, k, cin], 4);
            let p = (k / 2) as i32;
            Box::new(move || Ok(mlx_rs::ops::conv2d(&x, &wt, None, (p, p), None, None)?))
        }
        Case::Depthwise { n, h, w, c, k } => {
            let x = arr(&[n, h, w, c], 5);
            let wt = arr(&[k, k, c, 1], 6);
            Box::new(move || crate::kernels::depthwise(&x, &wt, None, 1, crate::kernels::Act::None))
        }
        Case::Attention { b, heads, l, d } => {
            let qkv = arr(&[b, l, 3 * heads * d], 7);
            Box::new(move || crate::kernels::multi_head_attention(&qkv, heads as i32, false))
        }
        Case::Linear { m, k, n } => {
            let x = arr(&[m, k], 10);
            // [k, n] as numpy's side has it, packed from its [n, k] transpose as the loader does
            let w = crate::rng::uniform(k * n, 11);
            let wt: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
            let p = crate::kernels::packed_shape(k, n).map(|d| d as i32);
            let wp = Array::from_slice(&crate::kernels::pack_out_in(&wt, n, k), &p);
            let b = arr(&[n], 12);
            Box::new(move || crate::kernels::linear(&x, &wp, n, Some(&b), None, crate::kernels::Act::None))
        }
    };
    op()?.eval()?;
    let mut runs_ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        op()?.eval()?;
        runs_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Timing { case: case.clone(), runs_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
