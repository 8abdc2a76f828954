//! mobileclip-kernels: MLX custom primitives for the towers on CPU.
//!
//! Why: MLX's x86 CPU backend runs element-wise ops as scalar, single-threaded loops, and
//! grouped convolutions through a scalar reference path. These primitives plug into MLX's
//! lazy graph like its own ops (a `Primitive` with an `eval_cpu`, MLX's documented extension
//! mechanism) and run vectorized loops (AVX-512 / AVX2 / baseline chosen at run time) on
//! [`threads`] threads. The C++ is in `cpp/`; this file is the only bridge to it.
//!
//! Every function builds a lazy array: errors in shapes or dtypes come back here as `Err`,
//! never as a C++ exception or an abort. The primitives run on the CPU stream only; on another
//! device the engine's kernel module uses plain MLX ops instead.

use std::ffi::{c_char, c_int, CStr};

use mlx_rs::Array;
use mlx_sys::mlx_array;

/// Activation fused at the end of a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    None = 0,
    /// The exact (erf) GELU, with the engine's float32-accurate rational erf.
    Gelu = 1,
}

/// A kernel refused its arguments (the message says which and why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError(pub String);

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KernelError {}

pub type Result<T> = std::result::Result<T, KernelError>;

extern "C" {
    fn mck_epilogue(
        res: *mut mlx_array,
        y: mlx_array,
        scale: mlx_array,
        bias: mlx_array,
        residual: mlx_array,
        act: c_int,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn mck_layer_norm(res: *mut mlx_array, x: mlx_array, w: mlx_array, b: mlx_array, eps: f32, err: *mut c_char, errlen: usize) -> c_int;
    fn mck_attention(res: *mut mlx_array, qkv: mlx_array, heads: c_int, causal: c_int, err: *mut c_char, errlen: usize) -> c_int;
    fn mck_depthwise(
        res: *mut mlx_array,
        x: mlx_array,
        w: mlx_array,
        bias: mlx_array,
        stride: c_int,
        act: c_int,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn mck_conv_small(
        res: *mut mlx_array,
        x: mlx_array,
        w: mlx_array,
        bias: mlx_array,
        stride: c_int,
        act: c_int,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn mck_linear(
        res: *mut mlx_array,
        x: mlx_array,
        w: mlx_array,
        n: c_int,
        bias: mlx_array,
        residual: mlx_array,
        act: c_int,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn mck_mlp(
        res: *mut mlx_array,
        y: mlx_array,
        x: mlx_array,
        w1: mlx_array,
        b1: mlx_array,
        w2: mlx_array,
        b2: mlx_array,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn mck_external_f32(
        res: *mut mlx_array,
        data: *const f32,
        shape: *const c_int,
        ndim: c_int,
        owner: *mut std::ffi::c_void,
        release: unsafe extern "C" fn(*mut std::ffi::c_void),
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn mck_mlp_scratch_floats(m: usize, c: usize, hidden: usize, threads: usize) -> usize;
    fn mck_attention_scratch_floats(l: usize, d: usize) -> usize;
    fn mck_set_threads(n: c_int);
    fn mck_threads() -> c_int;
    fn mck_isa() -> *const c_char;
    fn mck_tiles_isa() -> *const c_char;
}

const NONE: mlx_array = mlx_array { ctx: std::ptr::null_mut() };

fn opt(a: Option<&Array>) -> mlx_array {
    a.map_or(NONE, Array::as_ptr)
}

/// Calls one C entry point: it fills `res` or writes a message into `err`.
fn call(f: impl FnOnce(*mut mlx_array, *mut c_char, usize) -> c_int) -> Result<Array> {
    let mut res = NONE;
    let mut err = [0 as c_char; 512];
    let rc = f(&mut res, err.as_mut_ptr(), err.len());
    if rc != 0 || res.ctx.is_null() {
        // SAFETY: the C side always NUL-terminates within errlen (snprintf), and `err` starts
        // zeroed, so this is a valid C string in either case.
        let msg = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
        if !res.ctx.is_null() {
            // SAFETY: a non-null ctx is an mlx_array the C side allocated; Array takes
            // ownership and frees it on drop.
            drop(unsafe { Array::from_ptr(res) });
        }
        return Err(KernelError(if msg.is_empty() { "kernel failed".into() } else { msg }));
    }
    // SAFETY: rc == 0 and a non-null ctx: a fresh mlx_array owned by nobody else.
    Ok(unsafe { Array::from_ptr(res) })
}

/// `act(y * scale + bias) + residual` in one pass. `y`: [.., C]; `scale`: [S, C] (row r of y
/// uses scale row r / (rows / S): a per-image channel scale such as squeeze-excite's);
/// `bias`: [C]; `residual`: the shape of `y`.
pub fn epilogue(y: &Array, scale: Option<&Array>, bias: Option<&Array>, residual: Option<&Array>, act: Act) -> Result<Array> {
    // SAFETY: every mlx_array passed is borrowed from a live Array (or null = absent) for the
    // duration of the call; the C side copies what it keeps into the new graph node.
    call(|r, e, n| unsafe { mck_epilogue(r, y.as_ptr(), opt(scale), opt(bias), opt(residual), act as c_int, e, n) })
}

/// LayerNorm over the last axis (biased variance, as torch): `w`, `b`: [C].
pub fn layer_norm(x: &Array, w: &Array, b: &Array, eps: f32) -> Result<Array> {
    // SAFETY: as in `epilogue`.
    call(|r, e, n| unsafe { mck_layer_norm(r, x.as_ptr(), w.as_ptr(), b.as_ptr(), eps, e, n) })
}

/// Multi-head self-attention from the stacked projections: `qkv` [B, L, 3 W] (q, k, v, each
/// `heads` heads of W / heads) -> [B, L, W], softmax(q k^T / sqrt(W / heads)) v per head;
/// `causal`: token i sees tokens 0 ..= i. One kernel: q, k, v are read where the projection
/// wrote them and every head's output lands in its columns (no split or merge copies).
pub fn attention(qkv: &Array, heads: usize, causal: bool) -> Result<Array> {
    let heads = c_int::try_from(heads).map_err(|_| KernelError(format!("attention: {heads} heads")))?;
    // SAFETY: as in `epilogue`.
    call(|r, e, n| unsafe { mck_attention(r, qkv.as_ptr(), heads, causal as c_int, e, n) })
}

/// Floats of working memory [`attention`] takes from MLX's allocator per thread, for
/// sequences of `l` tokens and heads of `d` (for memory bounds).
pub fn attention_scratch_floats(l: usize, d: usize) -> usize {
    // SAFETY: plain value call.
    unsafe { mck_attention_scratch_floats(l, d) }
}

/// Depthwise k x k conv, NHWC, zero padding k / 2: `x` [N, H, W, C], `w` [k, k, C, m]
/// (output channel c * m + j reads input channel c), `bias` [C * m].
pub fn depthwise(x: &Array, w: &Array, bias: Option<&Array>, stride: usize, act: Act) -> Result<Array> {
    let stride = c_int::try_from(stride).map_err(|_| KernelError(format!("depthwise: stride {stride} too large")))?;
    // SAFETY: as in `epilogue`.
    call(|r, e, n| unsafe { mck_depthwise(r, x.as_ptr(), w.as_ptr(), opt(bias), stride, act as c_int, e, n) })
}

/// Dense k x k conv for few input channels (a stem), NHWC, zero padding k / 2:
/// `w` [k, k, Cin, O], `bias` [O].
pub fn conv_small(x: &Array, w: &Array, bias: Option<&Array>, stride: usize, act: Act) -> Result<Array> {
    let stride = c_int::try_from(stride).map_err(|_| KernelError(format!("conv: stride {stride} too large")))?;
    // SAFETY: as in `epilogue`.
    call(|r, e, n| unsafe { mck_conv_small(r, x.as_ptr(), w.as_ptr(), opt(bias), stride, act as c_int, e, n) })
}

/// Columns per panel of a packed GEMM weight (cpp/kernels.h, `kPanel`).
pub const PANEL: usize = 32;

/// The packed form the GEMM kernels read, of a PyTorch linear weight `w` [n, k] (row-major
/// [out, in]): ceil(n / PANEL) panels, each [k, PANEL] row-major (w transposed, 32 output
/// columns at a time; columns past n are 0). Its array shape is [`packed_shape`].
pub fn pack_out_in(w: &[f32], n: usize, k: usize) -> Vec<f32> {
    let panels = n.div_ceil(PANEL);
    let mut p = vec![0f32; panels * k * PANEL];
    for (o, row) in w.chunks_exact(k).enumerate().take(n) {
        let base = (o / PANEL) * k * PANEL + o % PANEL;
        for (i, &v) in row.iter().enumerate() {
            p[base + i * PANEL] = v;
        }
    }
    p
}

/// Shape of the packed form of a [k, n] GEMM weight: [ceil(n / PANEL), k, PANEL].
pub fn packed_shape(k: usize, n: usize) -> [usize; 3] {
    [n.div_ceil(PANEL), k, PANEL]
}

/// `act(x w + bias) + residual` as one register-tiled GEMM (no separate epilogue pass):
/// `x` [.., K], `w` the packed K x N weight ([`pack_out_in`]), `bias` [N], `residual` [.., N].
pub fn linear(x: &Array, w: &Array, n: usize, bias: Option<&Array>, residual: Option<&Array>, act: Act) -> Result<Array> {
    let n = c_int::try_from(n).map_err(|_| KernelError(format!("linear: {n} columns")))?;
    // SAFETY: as in `epilogue`.
    call(|r, e, len| unsafe { mck_linear(r, x.as_ptr(), w.as_ptr(), n, opt(bias), opt(residual), act as c_int, e, len) })
}

/// `x + (gelu(y w1 + b1) w2 + b2)` per block of rows, the hidden activations kept in cache
/// (FastViT's ConvMlp after its depthwise conv): `y`, `x` [.., C], `w1` packed C x H, `b1` [H],
/// `w2` packed H x C, `b2` [C].
pub fn mlp(y: &Array, x: &Array, w1: &Array, b1: &Array, w2: &Array, b2: &Array) -> Result<Array> {
    // SAFETY: as in `epilogue`.
    call(|r, e, n| unsafe { mck_mlp(r, y.as_ptr(), x.as_ptr(), w1.as_ptr(), b1.as_ptr(), w2.as_ptr(), b2.as_ptr(), e, n) })
}

/// Floats of working memory [`mlp`] takes from MLX's allocator for `m` rows of width `c`,
/// `hidden` wide inside, on `threads` threads (for memory bounds).
pub fn mlp_scratch_floats(m: usize, c: usize, hidden: usize, threads: usize) -> usize {
    // SAFETY: plain value call.
    unsafe { mck_mlp_scratch_floats(m, c, hidden, threads) }
}

/// Whatever keeps the memory behind an external array alive (the weights cache's mapping).
pub type Owner = std::sync::Arc<dyn std::any::Any + Send + Sync>;

unsafe extern "C" fn release_owner(p: *mut std::ffi::c_void) {
    // SAFETY: `p` is the Box<Owner> leaked in `external_f32`; the C side calls this exactly
    // once, when MLX frees the array's buffer.
    drop(unsafe { Box::from_raw(p.cast::<Owner>()) });
}

/// A float32 array of `shape` over `data` WITHOUT copying it; `owner` is kept alive until MLX
/// frees the array. Errors where this MLX build cannot wrap foreign memory (Metal; a CPU
/// allocator laid out differently): the caller copies instead.
///
/// # Safety
/// `data` must point to `shape`'s product of floats, 4-byte aligned, preceded by 8 readable
/// bytes, all kept valid and unmodified for as long as `owner` lives. MLX never writes to it
/// (an array the engine holds is never donated to an op's output).
pub unsafe fn external_f32(data: *const f32, shape: &[i32], owner: Owner) -> Result<Array> {
    let ndim = c_int::try_from(shape.len()).map_err(|_| KernelError("external array: too many axes".into()))?;
    let boxed = Box::into_raw(Box::new(owner)).cast::<std::ffi::c_void>();
    let r = call(|r, e, n| {
        // SAFETY: the caller's contract covers `data`; `shape` is borrowed for the call; `boxed`
        // is released by the C side only on success (below otherwise).
        unsafe { mck_external_f32(r, data, shape.as_ptr(), ndim, boxed, release_owner, e, n) }
    });
    if r.is_err() {
        // SAFETY: on failure the C side did not take `boxed` (see external.cpp).
        drop(unsafe { Box::from_raw(boxed.cast::<Owner>()) });
    }
    r
}

/// Threads the kernels use (the calling MLX stream thread included). Threads start on the
/// first kernel that runs, never earlier (fork safety).
pub fn set_threads(n: usize) {
    // SAFETY: plain value call; the pool serializes with running loops.
    unsafe { mck_set_threads(n.clamp(1, 1024) as c_int) }
}

pub fn threads() -> usize {
    // SAFETY: plain value call.
    unsafe { mck_threads() }.max(1) as usize
}

/// The instruction set the vectorized loops run with here: "avx512", "avx2" or "baseline".
pub fn isa() -> &'static str {
    // SAFETY: mck_isa returns a pointer to a static NUL-terminated literal.
    unsafe { CStr::from_ptr(mck_isa()) }.to_str().unwrap_or("unknown")
}

/// The body the register-tiled kernels (GEMM, MLP, attention, depthwise) run: "avx512",
/// "avx2" or "baseline" (the widest the CPU has, or a narrower one named by the environment
/// variable MOBILECLIP_TILES_ISA, for tests).
pub fn tiles_isa() -> &'static str {
    // SAFETY: mck_tiles_isa returns a pointer to a static NUL-terminated literal.
    unsafe { CStr::from_ptr(mck_tiles_isa()) }.to_str().unwrap_or("unknown")
}
