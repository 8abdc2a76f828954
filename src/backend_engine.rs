//! The per-backend engine state, created lazily on first use (never in _PG_init: see lib.rs),
//! and reloaded when `mobileclip.model_path` changes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use once_cell::sync::OnceCell;

use mobileclip_engine::runtime::{self, InitOptions};
use mobileclip_engine::{zero_shot, Engine, EngineError, LoadOptions};

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

/// Applies `mobileclip.threads` when it changed since the last call (a SET in the session, or,
/// at 0, another number of running backends).
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
    pub cache_dir: Option<PathBuf>,
    pub load_ms: f64,
    pub engine: Engine,
    /// Recent clip_embed_text results of this model. Why: the function is STABLE (it depends on
    /// mobileclip.model_path), so in `ORDER BY emb <=> clip_embed_text('query')` Postgres
    /// evaluates it once per row; the cache turns the repeats into a hash lookup.
    text_cache: RefCell<HashMap<String, Rc<Vec<f32>>>>,
    /// The caption embeddings of recent clip_classify label sets, keyed by template and
    /// labels: classifying every row of a table against the same labels embeds them once.
    label_sets: RefCell<Vec<(Vec<String>, LabelEmbeddings)>>,
    /// Towers whose cache trouble was already reported in this session (one WARNING each).
    warned: RefCell<Vec<&'static str>>,
}

/// Entries kept in the text cache before it is cleared.
const TEXT_CACHE_ENTRIES: usize = 256;
/// Longer texts are not cached (the key would cost more than it saves).
const TEXT_CACHE_MAX_KEY: usize = 4096;
/// The caption embeddings of one label set, in label order.
type LabelEmbeddings = Rc<Vec<Vec<f32>>>;

/// Label sets kept (most recent first), and the floats they may hold in all (32 MB: e.g.
/// ImageNet's 1,000 labels at 768 dimensions ten times over).
const LABEL_SETS: usize = 8;
const LABEL_CACHE_FLOATS: usize = 8 << 20;

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

    /// The embeddings of `template` filled with each label, in label order, from the label-set
    /// cache when this session used the same template and labels recently; else computed in
    /// batches of `batch_size`.
    pub fn label_embeddings(
        &self,
        template: &str,
        labels: &[&str],
        batch_size: usize,
        between: &mut dyn FnMut(),
    ) -> Result<LabelEmbeddings, EngineError> {
        // Compared in place (called once per row of a classified table: no key built per call).
        let same = |k: &[String]| k.len() == labels.len() + 1 && k[0] == template && k[1..].iter().zip(labels).all(|(a, b)| a == b);
        let mut sets = self.label_sets.borrow_mut();
        if let Some(pos) = sets.iter().position(|(k, _)| same(k)) {
            let hit = sets.remove(pos);
            let v = hit.1.clone();
            sets.insert(0, hit);
            return Ok(v);
        }
        drop(sets);
        let captions = labels.iter().map(|l| zero_shot::caption(template, l)).collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        let v = Rc::new(self.engine.embed_texts_with(&refs, batch_size, between)?);
        // Kept: the newest sets, up to LABEL_SETS of them and LABEL_CACHE_FLOATS in all.
        let floats = |e: &LabelEmbeddings| e.iter().map(Vec::len).sum::<usize>();
        let key: Vec<String> = std::iter::once(template).chain(labels.iter().copied()).map(str::to_owned).collect();
        let mut sets = self.label_sets.borrow_mut();
        sets.insert(0, (key, v.clone()));
        sets.truncate(LABEL_SETS);
        let mut total = 0;
        sets.retain(|(_, e)| {
            total += floats(e);
            total <= LABEL_CACHE_FLOATS
        });
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
    let cache_dir = guc::cache_dir();
    if let Some(current) = ENGINE.with(|e| e.borrow().clone()) {
        if current.path == path && current.cache_dir == cache_dir {
            return Ok(current);
        }
    }
    // Drop the old model before loading the new one: two large models need not coexist.
    ENGINE.with(|e| e.borrow_mut().take());
    let t = Instant::now();
    // Lazy towers: a session that only embeds text never loads the image tower. Every
    // tensor's key, shape and dtype is still checked here.
    let options = LoadOptions { cache_dir: cache_dir.clone(), lazy: true, ..LoadOptions::default() };
    let engine = Engine::load(&path, options)?;
    let loaded = Rc::new(Loaded {
        path,
        cache_dir,
        load_ms: t.elapsed().as_secs_f64() * 1e3,
        engine,
        text_cache: RefCell::new(HashMap::new()),
        label_sets: RefCell::new(Vec::new()),
        warned: RefCell::new(Vec::new()),
    });
    ENGINE.with(|e| *e.borrow_mut() = Some(loaded.clone()));
    Ok(loaded)
}

/// The engine if one is loaded (no loading).
pub fn loaded() -> Option<Rc<Loaded>> {
    ENGINE.with(|e| e.borrow().clone())
}

/// After a call that may have loaded a tower: a WARNING (once per tower and session) when the
/// weights cache could not be used (the call's result is right; the backend holds a private
/// copy), and MLX's buffer cache released at the end of the transaction.
pub fn after_call(l: &Loaded) {
    for t in l.engine.towers() {
        if let Some(mobileclip_engine::CacheState::Unavailable { why }) = &t.cache {
            if !l.warned.borrow().contains(&t.name) {
                l.warned.borrow_mut().push(t.name);
                let msg = format!("mobileclip: the {} tower is loaded privately (no shared weights cache): {why}", t.name);
                pgrx::warning!("{}", crate::errors::for_caller(&msg));
            }
        }
    }
    release_at_transaction_end();
}

/// MLX keeps freed activation buffers for reuse (up to runtime::DEFAULT_CACHE_LIMIT): fast for
/// the many calls of one statement, but an idle backend should not hold a big batch's worth.
/// When the transaction ends (commit or abort) a cache larger than `mobileclip.idle_cache_size`
/// is released, with glibc's free pages, so idle backends cost little beyond the shared
/// weights; a smaller one (a batch of one) is kept for the next call.
fn release_at_transaction_end() {
    thread_local! {
        static ARMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if ARMED.with(|a| a.replace(true)) {
        return;
    }
    for event in [pgrx::PgXactCallbackEvent::Commit, pgrx::PgXactCallbackEvent::Abort] {
        pgrx::register_xact_callback(event, || {
            ARMED.with(|a| a.set(false));
            runtime::release_memory_above(guc::idle_cache_bytes());
        });
    }
}
