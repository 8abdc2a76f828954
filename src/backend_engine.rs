//! The per-backend engine state, created lazily on first use (never in _PG_init: see lib.rs),
//! and reloaded when `mobileclip.model_path` changes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use once_cell::sync::OnceCell;

use mobileclip_engine::runtime::{self, InitOptions};
use mobileclip_engine::{Engine, EngineError, LoadOptions};

use crate::guc;

static RUNTIME: OnceCell<()> = OnceCell::new();

/// Starts MLX in this backend (once) and applies the session's settings. Every SQL function
/// that computes calls this first.
pub fn runtime() -> Result<(), EngineError> {
    RUNTIME.get_or_try_init(|| {
        // Run-time compile would fork g++ from the backend and share a cache directory across
        // backends, for ~2% speed: off.
        runtime::init(InitOptions { disable_compile: true, threads: Some(guc::threads()), cache_limit: None })
    })?;
    apply_threads();
    runtime::set_device(guc::device())
}

/// Applies `mobileclip.threads` when it changed since the last call (a SET in the session).
fn apply_threads() {
    thread_local! {
        static APPLIED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    let want = guc::threads();
    if APPLIED.with(|a| a.replace(want)) != want {
        runtime::set_threads(want);
    }
}

pub struct Loaded {
    pub path: PathBuf,
    pub load_ms: f64,
    pub engine: Engine,
    /// Recent clip_embed_text results of this model. Why: the function is STABLE (it depends on
    /// mobileclip.model_path), so in `ORDER BY emb <=> clip_embed_text('query')` Postgres
    /// evaluates it once per row; the cache turns the repeats into a hash lookup.
    text_cache: RefCell<HashMap<String, Rc<Vec<f32>>>>,
}

/// Entries kept in the text cache before it is cleared.
const TEXT_CACHE_ENTRIES: usize = 256;
/// Longer texts are not cached (the key would cost more than it saves).
const TEXT_CACHE_MAX_KEY: usize = 4096;

impl Loaded {
    /// The embedding of one text, from the cache when this session computed it recently.
    pub fn embed_text_cached(&self, text: &str, between: &mut dyn FnMut()) -> Result<Rc<Vec<f32>>, EngineError> {
        if let Some(hit) = self.text_cache.borrow().get(text) {
            return Ok(hit.clone());
        }
        let v = Rc::new(self.engine.embed_texts_with(&[text], 1, between)?.pop().unwrap_or_default());
        if text.len() <= TEXT_CACHE_MAX_KEY {
            let mut cache = self.text_cache.borrow_mut();
            if cache.len() >= TEXT_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(text.to_string(), v.clone());
        }
        Ok(v)
    }
}

thread_local! {
    // A backend is one thread; the engine is not shared with anything else.
    static ENGINE: RefCell<Option<Rc<Loaded>>> = const { RefCell::new(None) };
}

/// The engine for the current settings, loading (or reloading) it if needed.
pub fn engine() -> Result<Rc<Loaded>, EngineError> {
    runtime()?;
    let path = guc::model_path().ok_or_else(|| {
        EngineError::NotConfigured(
            "mobileclip.model_path is not set: SET it (superuser) or ALTER SYSTEM/ALTER DATABASE ... \
             SET mobileclip.model_path = '<directory of timm/MobileCLIP2-<V>-OpenCLIP>'"
                .into(),
        )
    })?;
    let path = PathBuf::from(path);
    if let Some(current) = ENGINE.with(|e| e.borrow().clone()) {
        if current.path == path {
            return Ok(current);
        }
    }
    // Drop the old model before loading the new one: two large models need not coexist.
    ENGINE.with(|e| e.borrow_mut().take());
    let t = Instant::now();
    let engine = Engine::load(&path, LoadOptions::default())?;
    let loaded = Rc::new(Loaded { path, load_ms: t.elapsed().as_secs_f64() * 1e3, engine, text_cache: RefCell::new(HashMap::new()) });
    ENGINE.with(|e| *e.borrow_mut() = Some(loaded.clone()));
    Ok(loaded)
}

/// The engine if one is loaded (no loading).
pub fn loaded() -> Option<Rc<Loaded>> {
    ENGINE.with(|e| e.borrow().clone())
}
