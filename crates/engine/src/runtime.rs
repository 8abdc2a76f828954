//! The MLX runtime as this process sees it: the one-time set-up that makes MLX safe to embed
//! in a long-lived, forked process such as a Postgres backend, and facts about what is bound.
//!
//! Rules (learned running MLX in a forked, long-lived process), enforced here so every caller gets them:
//! - mlx-rs installs its error handler lazily, on its first *guarded* op. Until then a raw
//!   mlx-sys call that fails runs mlx-c's default handler, which calls `exit()`. [`init`] runs
//!   a guarded op before anything else, and every raw call in this crate goes through it.
//! - MLX's run-time compile forks g++ and writes a shared cache; it buys ~2% here. [`init`]
//!   can switch it off (the extension does).
//! - Nothing here runs at load time: callers call [`init`] lazily, after any fork.

use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use mlx_rs::Array;
use once_cell::sync::OnceCell;
use serde::Serialize;

use crate::error::{EngineError, Result};

/// Where MLX runs. Only `Cpu` exists on Linux; `Gpu` is Metal on macOS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Cpu,
    Gpu,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        }
    }
}

impl std::str::FromStr for Device {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "gpu" | "metal" => Ok(Device::Gpu),
            other => Err(EngineError::InvalidInput(format!("unknown device \"{other}\" (expected \"cpu\" or \"gpu\")"))),
        }
    }
}

/// Process-wide settings applied once, by the first [`init`].
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Turn off MLX's run-time compile (no g++ forked from this process).
    pub disable_compile: bool,
    /// Threads for OpenBLAS and the kernel layer ([`set_threads`]); `None`: one per core.
    pub threads: Option<usize>,
    /// MLX's CPU buffer cache limit in bytes ([`set_cache_limit`]); `None`: [`DEFAULT_CACHE_LIMIT`].
    pub cache_limit: Option<usize>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions { disable_compile: true, threads: None, cache_limit: None }
    }
}

static INIT: OnceCell<std::result::Result<InitOptions, String>> = OnceCell::new();

/// Makes MLX safe to use from this process. Idempotent: later calls return the first outcome
/// (their options are ignored: the settings are process-wide).
pub fn init(options: InitOptions) -> Result<()> {
    INIT.get_or_init(|| init_once(options)).as_ref().map(|_| ()).map_err(|e| EngineError::Mlx(format!("MLX runtime failed to start: {e}")))
}

fn init_once(options: InitOptions) -> std::result::Result<InitOptions, String> {
    // A guarded op first: this is what installs mlx-rs's error handler (see module docs).
    let probe = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3]);
    let sum = probe.sum(None).map_err(|e| e.what().to_string())?;
    sum.eval().map_err(|e| e.what().to_string())?;
    let value: f32 = sum.try_item_exact().map_err(|e| e.to_string())?;
    if value != 6.0 {
        return Err(format!("MLX self-check computed 1+2+3 = {value}"));
    }
    if options.disable_compile {
        mlx_rs::transforms::compile::disable_compile();
    }
    set_threads(options.threads.unwrap_or_else(default_threads));
    set_cache_limit(options.cache_limit.unwrap_or(DEFAULT_CACHE_LIMIT)).map_err(|e| e.to_string())?;
    Ok(options)
}

fn ensure_init() -> Result<()> {
    init(InitOptions::default())
}

/// Cores this process may run on: the default thread count.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Threads one embedding call may use: OpenBLAS's workers (GEMMs) and the kernel layer's
/// pool (everything else) take turns, so both get the same count. Clamped to 1..=cores
/// (more threads than cores only adds switching).
pub fn set_threads(n: usize) {
    let n = n.clamp(1, default_threads());
    openblas::set_threads(n);
    crate::kernels::set_threads(n);
}

/// MLX's default CPU buffer cache (32 MB) is far below one forward pass's intermediates, so
/// most buffers were freshly mmap'ed and page-faulted in (the kernel zeroing pages was ~40% of
/// an S0 batch's profile). Measured in BENCHMARKS.md ("Buffer cache"); freed buffers beyond the
/// limit go back to the system.
pub const DEFAULT_CACHE_LIMIT: usize = 512 << 20;

/// Sets MLX's buffer cache limit (bytes); returns the previous limit.
pub fn set_cache_limit(bytes: usize) -> Result<usize> {
    let mut prev = 0usize;
    // SAFETY: plain value call into MLX's allocator; `prev` is a valid out-pointer.
    if unsafe { mlx_sys::mlx_set_cache_limit(&mut prev, bytes) } != 0 {
        return Err(EngineError::Mlx("mlx_set_cache_limit failed".into()));
    }
    CACHE_LIMIT.store(bytes, Ordering::Relaxed);
    Ok(prev)
}

/// The cache limit last set (MLX's default until `init` sets ours): what [`reserve`] adds.
static CACHE_LIMIT: AtomicUsize = AtomicUsize::new(32 << 20);

/// Returns the cached (free, kept for reuse) buffers to the system.
pub fn clear_cache() {
    // SAFETY: plain call into MLX's allocator.
    unsafe { mlx_sys::mlx_clear_cache() };
}

/// Gives memory back to the system: MLX's buffer cache, then the C heap's free pages (glibc
/// keeps freed blocks below its mmap threshold, which MLX's smaller buffers are).
pub fn release_memory() {
    clear_cache();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// [`release_memory`] when MLX's buffer cache holds more than `keep` bytes; otherwise the
/// cache is left as it is, so the next call (a batch of one in the next transaction) reuses
/// its buffers instead of faulting fresh pages in (5-15 ms per call for S0 and B).
pub fn release_memory_above(keep: usize) {
    let (_, cached, _) = memory_stats();
    if cached > keep || keep == 0 {
        release_memory();
    }
}

/// Resets MLX's peak-memory counter to the memory active now.
pub fn reset_peak_memory() {
    // SAFETY: plain call into MLX's allocator.
    unsafe { mlx_sys::mlx_reset_peak_memory() };
}

/// Room for `bytes` more, asked for before MLX allocates: MLX's CPU allocator does not fail
/// when `malloc` returns NULL, it hands the op a null buffer and the process dies of SIGSEGV
/// (mlx/backend/no_gpu/allocator.cpp; in Postgres a crashed backend and a cluster restart).
/// So the engine asks the kernel, before each load step and forward pass, for the memory it
/// will need (an anonymous mapping of that size, never touched) and gives it back at once.
///
/// Besides the live buffers, MLX keeps freed ones for reuse (up to the cache limit), and
/// those count against an address-space limit too. If `bytes` plus that cache does not fit,
/// the cache is released and switched off until the returned [`Room`] is dropped (slower,
/// but within the limit); if `bytes` alone does not fit, `EngineError::OutOfMemory`. This
/// catches what an address-space limit (RLIMIT_AS, `ulimit -v`) or strict overcommit
/// (`vm.overcommit_memory = 2`, what the Postgres documentation recommends) refuses. With
/// the kernel's default heuristic overcommit nothing is refused up front and real
/// exhaustion is the OOM killer's, which no process can turn into an error (SECURITY.md).
pub fn reserve(bytes: usize, what: &str) -> Result<Room> {
    // mmap itself, not malloc + free: the compiler may delete an unused malloc/free pair (and
    // assume it succeeded). A private writable mapping is what the address-space limit and
    // the commit charge count; its pages are never touched, so it costs two system calls.
    let fits = |n: usize| {
        // SAFETY: a fresh anonymous mapping that nothing else sees, unmapped at once; failure
        // is MAP_FAILED, handled.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                n.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return false;
            }
            libc::munmap(p, n.max(1));
            true
        }
    };
    let cache = CACHE_LIMIT.load(Ordering::Relaxed);
    if fits(bytes.saturating_add(cache)) {
        return Ok(Room { restore: None });
    }
    release_memory();
    let room = if cache > 0 && set_cache_limit(0).is_ok() { Room { restore: Some(cache) } } else { Room { restore: None } };
    if fits(bytes) {
        return Ok(room);
    }
    Err(EngineError::OutOfMemory(format!(
        "out of memory: {what} needs about {} MB that this process cannot allocate (its address-space limit or the \
         system's commit limit is reached)",
        bytes.div_ceil(1 << 20)
    )))
}

/// What [`reserve`] granted: while it lives, MLX's buffer cache may be switched off (memory
/// was short); dropping it switches the cache back on.
#[must_use = "the room holds for as long as the value lives"]
pub struct Room {
    restore: Option<usize>,
}

impl Drop for Room {
    fn drop(&mut self) {
        if let Some(limit) = self.restore {
            set_cache_limit(limit).ok();
        }
    }
}

/// MLX allocator figures (bytes): (active, cached, peak).
pub fn memory_stats() -> (usize, usize, usize) {
    let (mut a, mut c, mut p) = (0usize, 0usize, 0usize);
    // SAFETY: plain calls with valid out-pointers.
    unsafe {
        mlx_sys::mlx_get_active_memory(&mut a);
        mlx_sys::mlx_get_cache_memory(&mut c);
        mlx_sys::mlx_get_peak_memory(&mut p);
    }
    (a, c, p)
}

/// Selects the default MLX device for this process's following work.
pub fn set_device(device: Device) -> Result<()> {
    ensure_init()?;
    match device {
        Device::Cpu => mlx_rs::Device::set_default(&mlx_rs::Device::cpu()),
        Device::Gpu => {
            if !metal_available()? {
                return Err(EngineError::Unsupported(
                    "device \"gpu\" needs MLX with Metal (macOS on Apple silicon); this build runs on the CPU only".into(),
                ));
            }
            mlx_rs::Device::set_default(&mlx_rs::Device::gpu())
        }
    }
    Ok(())
}

/// The MLX library version actually loaded (not the one compiled against).
pub fn mlx_version() -> Result<String> {
    ensure_init()?;
    // SAFETY: the handler is installed (ensure_init); the string is owned here and freed once.
    unsafe {
        let mut s = mlx_sys::mlx_string_new();
        if mlx_sys::mlx_version(&mut s) != 0 {
            mlx_sys::mlx_string_free(s);
            return Err(EngineError::Mlx("mlx_version failed".into()));
        }
        let data = mlx_sys::mlx_string_data(s);
        let v = if data.is_null() { String::new() } else { CStr::from_ptr(data).to_string_lossy().into_owned() };
        mlx_sys::mlx_string_free(s);
        Ok(v)
    }
}

/// Whether this MLX has a usable Metal device.
pub fn metal_available() -> Result<bool> {
    ensure_init()?;
    let mut available = false;
    // SAFETY: handler installed; writes one bool.
    let rc = unsafe { mlx_sys::mlx_metal_is_available(&mut available) };
    if rc != 0 {
        return Err(EngineError::Mlx("mlx_metal_is_available failed".into()));
    }
    Ok(available)
}

/// Which BLAS serves MLX's matrix products, as the dynamic linker resolved it.
#[derive(Clone, Debug, Serialize)]
pub struct BlasInfo {
    /// The file that defines the `cblas_sgemm` this process resolves (global lookup scope,
    /// which for a dlopen'ed RTLD_GLOBAL extension is also what libmlx was bound to).
    pub sgemm_library: Option<String>,
    /// "openblas" when OpenBLAS is bound, else "other".
    pub vendor: String,
    /// `openblas_get_config()`: version, kernel (e.g. Cooperlake), threading.
    pub openblas_config: Option<String>,
    pub openblas_threads: Option<i32>,
}

mod openblas {
    use super::*;

    fn sym(name: &CStr) -> *mut libc::c_void {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads.
        unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
    }

    pub fn config() -> Option<String> {
        let f = sym(c"openblas_get_config");
        if f.is_null() {
            return None;
        }
        // SAFETY: OpenBLAS's `char* openblas_get_config(void)` returns a static string.
        let f: extern "C" fn() -> *const c_char = unsafe { std::mem::transmute(f) };
        let p = f();
        // SAFETY: non-null, a NUL-terminated static string (above).
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    pub fn threads() -> Option<i32> {
        let f = sym(c"openblas_get_num_threads");
        if f.is_null() {
            return None;
        }
        // SAFETY: `int openblas_get_num_threads(void)`.
        let f: extern "C" fn() -> c_int = unsafe { std::mem::transmute(f) };
        Some(f())
    }

    pub fn set_threads(n: usize) {
        let f = sym(c"openblas_set_num_threads");
        if !f.is_null() {
            // SAFETY: `void openblas_set_num_threads(int)`.
            let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(f) };
            f(n.clamp(1, 256) as c_int);
        }
    }

    pub fn defining_file(name: &CStr) -> Option<String> {
        let p = sym(name);
        if p.is_null() {
            return None;
        }
        // SAFETY: dladdr fills a plain struct; dli_fname points into the loader's tables.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            if libc::dladdr(p, &mut info) == 0 || info.dli_fname.is_null() {
                return None;
            }
            let path = CStr::from_ptr(info.dli_fname).to_string_lossy().into_owned();
            Some(std::fs::canonicalize(&path).map(|p| p.display().to_string()).unwrap_or(path))
        }
    }
}

pub fn blas_info() -> BlasInfo {
    let config = openblas::config();
    BlasInfo {
        sgemm_library: openblas::defining_file(c"cblas_sgemm"),
        vendor: if config.is_some() { "openblas" } else { "other" }.to_string(),
        openblas_config: config,
        openblas_threads: openblas::threads(),
    }
}

/// Thread counts of this process.
#[derive(Clone, Debug, Serialize)]
pub struct ThreadInfo {
    /// Cores this process may use.
    pub available_parallelism: usize,
    /// Threads of this process now (Linux: /proc/self/status), MLX's stream thread included.
    pub process_threads: Option<usize>,
    /// OpenBLAS workers: the only multi-threaded part of MLX on CPU (matmul, dense conv).
    pub blas_threads: Option<i32>,
    /// MLX's own CPU kernels (reductions, copies) run on one stream thread.
    pub mlx_cpu_stream_threads: usize,
    /// The kernel layer's threads (element-wise, norms, softmax, convs), the stream thread
    /// included, and the instruction set its loops run with.
    pub kernel_threads: usize,
    pub kernel_isa: String,
}

pub fn thread_info() -> ThreadInfo {
    let process_threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").and_then(|v| v.trim().parse().ok())));
    ThreadInfo {
        available_parallelism: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        process_threads,
        blas_threads: openblas::threads(),
        mlx_cpu_stream_threads: 1,
        kernel_threads: crate::kernels::threads(),
        kernel_isa: crate::kernels::isa().to_string(),
    }
}

/// A small matrix product on MLX compared with the same product on the host: proves MLX ran.
#[derive(Clone, Debug, Serialize)]
pub struct SelfCheck {
    pub op: String,
    pub max_abs_err: f32,
    pub ok: bool,
    pub ms: f64,
}

pub fn self_check() -> Result<SelfCheck> {
    ensure_init()?;
    let (m, k, n) = (64usize, 48usize, 32usize);
    let a = crate::rng::uniform(m * k, 1);
    let b = crate::rng::uniform(k * n, 2);
    let t = std::time::Instant::now();
    let got = matmul_host(&a, [m, k], &b, [k, n])?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let mut max_abs_err = 0f32;
    for i in 0..m {
        for j in 0..n {
            let want: f64 = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
            max_abs_err = max_abs_err.max((got[i * n + j] as f64 - want).abs() as f32);
        }
    }
    Ok(SelfCheck { op: format!("matmul {m}x{k} @ {k}x{n}"), max_abs_err, ok: max_abs_err < 1e-4, ms })
}

/// Largest result of [`matmul_host`], in elements (64 MiB of f32). Checked before MLX
/// allocates: a failed MLX allocation is a SIGSEGV on the stream thread, not an error.
pub const MATMUL_MAX_ELEMENTS: usize = 1 << 24;

/// `a @ b` on MLX for row-major host matrices. Shapes are deliberately NOT compared here:
/// MLX checks them and its error comes back as `EngineError::Mlx` (the extension's test of
/// the error path relies on this). Sizes are bounded before MLX allocates anything.
pub fn matmul_host(a: &[f32], a_shape: [usize; 2], b: &[f32], b_shape: [usize; 2]) -> Result<Vec<f32>> {
    ensure_init()?;
    for (name, data, shape) in [("first", a, a_shape), ("second", b, b_shape)] {
        let elements = shape[0].checked_mul(shape[1]);
        if elements != Some(data.len()) {
            return Err(EngineError::InvalidInput(format!(
                "{name} matrix: {}x{} needs {} values, got {}",
                shape[0],
                shape[1],
                shape[0].saturating_mul(shape[1]),
                data.len()
            )));
        }
    }
    let out = a_shape[0].saturating_mul(b_shape[1]);
    let work = a_shape[0].saturating_mul(a_shape[1]).saturating_mul(b_shape[1]);
    if out > MATMUL_MAX_ELEMENTS || a.len() > MATMUL_MAX_ELEMENTS || b.len() > MATMUL_MAX_ELEMENTS || work > (1 << 34) {
        return Err(EngineError::LimitExceeded(format!(
            "matmul {}x{} @ {}x{} is over the limit of {} elements per matrix",
            a_shape[0], a_shape[1], b_shape[0], b_shape[1], MATMUL_MAX_ELEMENTS
        )));
    }
    let dims = |s: [usize; 2]| -> Result<[i32; 2]> {
        let c = |v: usize| i32::try_from(v).map_err(|_| EngineError::LimitExceeded(format!("dimension {v} too large")));
        Ok([c(s[0])?, c(s[1])?])
    };
    let a = Array::from_slice(a, &dims(a_shape)?);
    let b = Array::from_slice(b, &dims(b_shape)?);
    let c = a.matmul(&b)?;
    c.eval()?;
    Ok(c.try_as_slice::<f32>().map_err(|e| EngineError::Mlx(e.to_string()))?.to_vec())
}

/// Everything a DBA or a bug report needs to know about the runtime in this process.
#[derive(Clone, Debug, Serialize)]
pub struct RuntimeInfo {
    pub engine_version: String,
    pub mlx_version: String,
    pub device: Device,
    pub metal_available: bool,
    pub compile_disabled: bool,
    pub blas: BlasInfo,
    pub threads: ThreadInfo,
    pub self_check: SelfCheck,
    pub memory: MemoryInfo,
}

/// MLX's memory in this process now, in bytes: arrays alive, freed buffers kept for reuse
/// (the buffer cache), and the peak since it was last reset.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryInfo {
    pub active_bytes: usize,
    pub cache_bytes: usize,
    pub peak_bytes: usize,
}

/// Collects [`RuntimeInfo`], running a real MLX op (the self-check) in this process.
pub fn runtime_info() -> Result<RuntimeInfo> {
    ensure_init()?;
    let device = match mlx_rs::Device::try_default()?.get_type()? {
        mlx_rs::DeviceType::Gpu => Device::Gpu,
        _ => Device::Cpu,
    };
    let compile_disabled = INIT.get().and_then(|r| r.as_ref().ok()).map(|o| o.disable_compile).unwrap_or(false);
    let (active_bytes, cache_bytes, peak_bytes) = memory_stats();
    let self_check = self_check()?;
    Ok(RuntimeInfo {
        engine_version: env!("CARGO_PKG_VERSION").to_string(),
        mlx_version: mlx_version()?,
        device,
        metal_available: metal_available()?,
        compile_disabled,
        blas: blas_info(),
        threads: thread_info(),
        self_check,
        memory: MemoryInfo { active_bytes, cache_bytes, peak_bytes },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_info_reports_real_mlx_and_openblas() {
        let info = runtime_info().unwrap();
        assert_eq!(info.mlx_version, "0.32.2");
        assert_eq!(info.device, Device::Cpu);
        assert!(info.compile_disabled);
        assert!(info.self_check.ok, "{:?}", info.self_check);
        // The build links OpenBLAS so that libmlx's cblas_sgemm binds to it.
        assert_eq!(info.blas.vendor, "openblas", "{:?}", info.blas);
        let lib = info.blas.sgemm_library.unwrap_or_default();
        assert!(lib.contains("openblas"), "cblas_sgemm from {lib}");
    }

    #[test]
    fn matmul_shape_mismatch_is_an_mlx_error_and_mlx_keeps_working() {
        let err = matmul_host(&[1.0; 6], [2, 3], &[1.0; 4], [2, 2]).unwrap_err();
        match err {
            EngineError::Mlx(msg) => assert!(msg.contains("matmul"), "{msg}"),
            other => panic!("expected an MLX error, got {other:?}"),
        }
        let ok = matmul_host(&[1.0, 2.0, 3.0, 4.0], [2, 2], &[1.0, 0.0, 0.0, 1.0], [2, 2]).unwrap();
        assert_eq!(ok, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn matmul_limits_are_checked_before_mlx_allocates() {
        // 100000 x 1 @ 1 x 100000 would be a 40 GB result: refused up front.
        let a = vec![1.0f32; 100_000];
        let err = matmul_host(&a, [100_000, 1], &a, [1, 100_000]).unwrap_err();
        assert!(matches!(err, EngineError::LimitExceeded(_)), "{err:?}");
        let err = matmul_host(&[1.0; 5], [2, 3], &[1.0; 3], [3, 1]).unwrap_err();
        assert!(matches!(err, EngineError::InvalidInput(_)), "{err:?}");
    }

    #[test]
    fn gpu_is_refused_cleanly_without_metal() {
        if metal_available().unwrap() {
            return;
        }
        assert!(matches!(set_device(Device::Gpu), Err(EngineError::Unsupported(_))));
        set_device(Device::Cpu).unwrap();
        assert!("tpu".parse::<Device>().is_err());
        assert_eq!("CPU".parse::<Device>().unwrap(), Device::Cpu);
    }
}
