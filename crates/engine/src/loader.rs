//! Loading one tower: mapped from the weights cache when it holds a verified copy made from
//! this model file, else made from the model file (and then written to the cache, so the
//! next process maps it). Without a cache directory, made from the file and kept private.

use std::path::Path;
use std::time::Instant;

use mlx_rs::Array;

use crate::error::Result;
use crate::params::Params;
use crate::runtime;
use crate::weights::Weights;
use crate::weights_cache::{self, CacheFile, CacheKey};

/// Where a loaded tower's weights live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheState {
    /// No cache directory: private memory of this process.
    Off,
    /// Mapped from an existing cache file (shared with every process that maps it).
    Hit,
    /// The cache file was (re)built by this load, then mapped. `why`: why it was built
    /// (missing, stale, damaged).
    Built { why: String },
    /// The cache could not be used (e.g. a read-only or full directory): private memory.
    Unavailable { why: String },
}

impl CacheState {
    /// One word for tables: off, hit, built, unavailable.
    pub fn label(&self) -> &'static str {
        match self {
            CacheState::Off => "off",
            CacheState::Hit => "hit",
            CacheState::Built { .. } => "built",
            CacheState::Unavailable { .. } => "unavailable",
        }
    }
}

pub struct Loaded<T> {
    pub tower: T,
    pub cache: CacheState,
    /// Parameters (floats) the tower holds.
    pub params: usize,
    /// Arrays of them that are private copies although the cache is on (an MLX build that
    /// cannot wrap foreign memory): 0 normally.
    pub copied: usize,
    pub load_ms: f64,
}

/// Loads a tower with `make` (the tower's loader), using the cache at `cache` =
/// (directory, BLAKE3 of the model file) when given.
pub fn load<T>(src: &Weights, cache: Option<(&Path, &str)>, tower: &'static str, make: impl Fn(&Params) -> Result<T>) -> Result<Loaded<T>> {
    let t0 = Instant::now();
    let done = |tower: T, cache: CacheState, params: usize, copied: usize| Loaded {
        tower,
        cache,
        params,
        copied,
        load_ms: t0.elapsed().as_secs_f64() * 1e3,
    };
    let Some((dir, hash)) = cache else {
        let (t, arrays) = build(src, &make)?;
        return Ok(done(t, CacheState::Off, count(&arrays), 0));
    };
    let key = CacheKey { source_hash: hash.to_string(), tower };
    let path = dir.join(key.file_name());
    let why = if path.exists() {
        match from_cache(src, &path, &key, &make) {
            Ok((t, params, copied)) => return Ok(done(t, CacheState::Hit, params, copied)),
            Err(e) => format!("rebuilt: {e}"),
        }
    } else {
        "first load of this model file".to_string()
    };
    // Build straight into the cache file: one array in memory at a time, so the peak of a
    // first load is about the mapped file, not the file plus a private copy.
    let unavailable = match weights_cache::CacheWriter::create(dir, &key) {
        // The directory or the temporary file could not be created.
        Err(e) => e.to_string(),
        Ok(w) => {
            let p = Params::stream(src, w);
            // A bad model (a non-finite weight...) is the load's error, cache or not.
            drop(make(&p)?);
            match p.finish_stream() {
                Ok(_) => match from_cache(src, &path, &key, &make) {
                    Ok((t, params, copied)) => return Ok(done(t, CacheState::Built { why }, params, copied)),
                    // Written but unusable (replaced or removed under us).
                    Err(e) => e.to_string(),
                },
                Err(write_error) => write_error,
            }
        }
    };
    runtime::clear_cache();
    let (t, arrays) = build(src, &make)?;
    Ok(done(t, CacheState::Unavailable { why: unavailable }, count(&arrays), 0))
}

fn count(arrays: &[Array]) -> usize {
    arrays.iter().map(|a| a.size()).sum()
}

/// The tower made from the model file, every array evaluated now (load cost and errors at
/// load, not at first use), and the arrays in the order the loader asked for them.
fn build<T>(src: &Weights, make: &impl Fn(&Params) -> Result<T>) -> Result<(T, Vec<Array>)> {
    let p = Params::build(src);
    let t = make(&p)?;
    let arrays = p.finish_built()?;
    mlx_rs::transforms::eval(arrays.iter().collect::<Vec<_>>())?;
    Ok((t, arrays))
}

fn from_cache<T>(src: &Weights, path: &Path, key: &CacheKey, make: &impl Fn(&Params) -> Result<T>) -> Result<(T, usize, usize)> {
    let file = CacheFile::open(path, key)?;
    let p = Params::cached(src, &file);
    let t = make(&p)?;
    let params = (0..file.len()).map(|i| file.shape(i).map_or(0, |s| s.iter().product::<usize>())).sum();
    let copied = p.finish_cached()?;
    Ok((t, params, copied))
}
