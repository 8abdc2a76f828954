//! The SQL functions. Each one: check inputs, start the runtime, call the engine, map errors.

use pgrx::prelude::*;
use pgrx::JsonB;

use mobileclip_engine::{microbench, runtime, EngineError};

use crate::backend_engine;
use crate::errors::OrRaise;
use crate::guc;

/// Facts about MLX in this backend, computed by running MLX here: versions, device, which
/// BLAS libmlx is bound to, thread counts, a matmul self-check; with `bench => true` also
/// in-backend timings of the runtime micro-benchmarks (medians of 7 runs).
#[pg_extern(volatile, parallel_safe)]
fn clip_runtime_info(bench: default!(bool, false)) -> JsonB {
    if bench && !crate::errors::is_superuser() {
        // Seconds of every core: a diagnostic for the DBA, not for any role.
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "mobileclip: clip_runtime_info(bench => true) is for superusers (it keeps every core busy for seconds)"
        );
    }
    backend_engine::runtime().or_raise();
    let info = runtime::runtime_info().or_raise();
    let mut value = serde_json::to_value(&info)
        .unwrap_or_else(|e| crate::errors::raise(EngineError::Mlx(format!("runtime info not serializable: {e}"))));
    value["extension_version"] = env!("CARGO_PKG_VERSION").into();
    if !crate::errors::is_superuser() {
        // Where the BLAS library lives on the server's filesystem: for superusers.
        value["blas"]["sgemm_library"] = serde_json::Value::Null;
    }
    if bench {
        let mut rows = Vec::new();
        for case in microbench::standard_suite() {
            pgrx::check_for_interrupts!();
            let t = microbench::run(&case, 7).or_raise();
            rows.push(serde_json::json!({
                "op": case.label(),
                "median_ms": t.median_ms(),
                "gflops": t.gflops(),
            }));
        }
        value["bench"] = rows.into();
    }
    JsonB(value)
}

/// `a @ b` computed by MLX in this backend, for two 2-D real[] matrices. A diagnostic: it
/// shows MLX working (and failing cleanly) inside Postgres. Shape errors are left to MLX on
/// purpose, so its error reporting is exercised: they arrive as SQLSTATE 38000.
#[pg_extern(immutable, strict, parallel_safe)]
fn clip_runtime_matmul(a: Array<'_, f32>, b: Array<'_, f32>) -> Vec<f32> {
    let (a_vals, a_shape) = matrix("a", a);
    let (b_vals, b_shape) = matrix("b", b);
    backend_engine::runtime().or_raise();
    runtime::matmul_host(&a_vals, a_shape, &b_vals, b_shape).or_raise()
}

/// The values and [rows, cols] of a 2-D real[] without NULLs (1-D counts as one row).
fn matrix(name: &str, arr: Array<'_, f32>) -> (Vec<f32>, [usize; 2]) {
    let bad = |msg: String| -> ! { crate::errors::raise(EngineError::InvalidInput(msg)) };
    if arr.contains_nulls() {
        bad(format!("{name} must not contain NULL"));
    }
    let values: Vec<f32> = arr.iter_deny_null().collect();
    let ptr = arr.into_array_type();
    let dims: Vec<usize> = match std::ptr::NonNull::new(ptr as *mut pg_sys::ArrayType) {
        // SAFETY: pgrx handed us a detoasted array; RawArray only reads its header.
        Some(p) => unsafe { pgrx::array::RawArray::from_ptr(p) }.dims().iter().map(|&d| d as usize).collect(),
        None => Vec::new(),
    };
    match dims.as_slice() {
        [n] => (values, [1, *n]),
        [r, c] => (values, [*r, *c]),
        [] => bad(format!("{name} is empty")),
        _ => bad(format!("{name} must be a 1-D or 2-D array, got {} dimensions", dims.len())),
    }
}

/// The model this session uses: loads it and both towers if needed (a warm-up; the embedding
/// functions load each tower on first use) and describes it.
#[pg_extern(volatile, parallel_safe)]
fn clip_load() -> JsonB {
    let loaded = backend_engine::engine().or_raise();
    loaded.engine.warm().or_raise();
    backend_engine::after_call(&loaded);
    JsonB(model_json(&loaded, true))
}

/// The model this session has loaded, without loading one: `loaded` false if none yet.
#[pg_extern(volatile, parallel_safe)]
fn clip_model_info() -> JsonB {
    match backend_engine::loaded() {
        Some(l) => JsonB(model_json(&l, true)),
        None => JsonB(serde_json::json!({
            "loaded": false,
            "model_path": guc::model_path().filter(|_| crate::errors::is_superuser()),
        })),
    }
}

/// The model as clip_load/clip_model_info describe it. Paths (model, cache directory, cache
/// trouble) only for superusers: the settings are theirs (SECURITY.md).
fn model_json(l: &backend_engine::Loaded, loaded: bool) -> serde_json::Value {
    let su = crate::errors::is_superuser();
    let cfg = l.engine.config();
    let t = cfg.text();
    serde_json::json!({
        "loaded": loaded,
        "model_path": su.then(|| l.path.display().to_string()),
        "load_ms": l.load_ms,
        // "MobileCLIP2-S0" etc., told by the image tower (the directory carries no name).
        "variant": cfg.variant().map(|v| format!("MobileCLIP2-{v}")),
        "embed_dim": cfg.model_cfg.embed_dim,
        "logit_scale": l.engine.logit_scale().ok(),
        "image_model": cfg.vision().timm_model_name,
        "image": {
            "size": l.engine.image_preprocess().size,
            "interpolation": l.engine.image_preprocess().interpolation,
            "mean": l.engine.image_preprocess().mean,
            "std": l.engine.image_preprocess().std,
        },
        "text": {
            "width": t.width, "heads": t.heads, "layers": t.layers,
            "context_length": t.context_length, "vocab_size": t.vocab_size,
            "causal_mask": t.causal(),
        },
        // Per tower: loaded yet (towers load on first use), parameters, load time, and where
        // the weights live: hit/built = mapped from the shared weights cache, off = cache
        // disabled, unavailable = private copy (why in cache_detail).
        "cache_dir": l.cache_dir.as_ref().filter(|_| su).map(|p| p.display().to_string()),
        "towers": l.engine.towers().iter().map(|tw| serde_json::json!({
            "tower": tw.name,
            "loaded": tw.loaded,
            "params": tw.params,
            "bytes": tw.params * 4,
            // Shared: mapped read-only from the weights cache file (one copy per machine);
            // private: this backend's own memory.
            "held": match &tw.cache {
                Some(mobileclip_engine::CacheState::Hit | mobileclip_engine::CacheState::Built { .. }) if tw.copied == 0 => Some("shared"),
                Some(_) => Some("private"),
                None => None,
            },
            "load_ms": tw.load_ms,
            "cache": tw.cache.as_ref().map(|c| c.label()),
            "cache_detail": match &tw.cache {
                Some(mobileclip_engine::CacheState::Built { why }) => Some(crate::errors::for_caller(why)),
                Some(mobileclip_engine::CacheState::Unavailable { why }) => Some(crate::errors::for_caller(why)),
                _ => None,
            },
        })).collect::<Vec<_>>(),
    })
}
