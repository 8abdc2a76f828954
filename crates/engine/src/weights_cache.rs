//! The weights cache: each tower's inference-form weights (reparameterized, in the layout the
//! towers use: exactly the arrays the loader made, nothing converted later) written once per
//! model file into a cache directory, and mapped read-only by every process that loads the
//! model. The pages are the kernel's page cache, shared by all backends: the weights are in
//! memory once per machine, not once per connection, and a warm load is a map plus a hash.
//!
//! A cache file is a valid safetensors file (any safetensors tool can read it) named after
//! what it was made from: `<tower>-<BLAKE3 of the source file>-v<engine>-l<layout>.safetensors`.
//! Tensors are named `t00000`, `t00001`, ... in the order the tower's loader asks for them
//! ([`crate::params`]); `pad*` u8 tensors fill the gaps that put every tensor at a 64-byte
//! aligned file offset with at least 8 free bytes before it (MLX's CPU buffers carry an
//! 8-byte size word before the data: see crates/kernels/cpp/external.cpp).
//!
//! Trust: nothing in a cache file is believed until checked. The header must parse and cover
//! the file exactly (a truncated or extended file fails), its metadata must name this format,
//! layout, engine version, tower and source hash, and the BLAKE3 of the tensor table and
//! all data bytes must equal the one recorded. Any failure means "stale or damaged": the
//! caller rebuilds it. Files are written to a unique temporary name and renamed into place,
//! so readers never see a partial file and concurrent builders of the same file are harmless
//! (both write the same bytes; the last rename wins; a reader keeps the inode it mapped).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use memmap2::Mmap;
use mlx_rs::{Array, Dtype};
use safetensors::tensor::SafeTensors;

use crate::error::{EngineError, Result};
use crate::kernels;

/// Bump when a tower's loader changes the order or form of the arrays it asks for.
pub const LAYOUT_VERSION: u32 = 1;
const FORMAT: &str = "mobileclip-weights-cache";
const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");
const ALIGN: usize = 64;
/// Free bytes before each tensor (MLX's CPU buffer header).
const SLOT: usize = 8;

/// What a cache file must have been made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    /// BLAKE3 of the source safetensors file, hex.
    pub source_hash: String,
    /// "text" or "image".
    pub tower: &'static str,
}

impl CacheKey {
    pub fn file_name(&self) -> String {
        format!("{}-{}-v{ENGINE_VERSION}-l{LAYOUT_VERSION}.safetensors", self.tower, self.source_hash)
    }

    fn metadata(&self, content: &str, count: usize) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("layout".to_string(), LAYOUT_VERSION.to_string()),
            ("engine".to_string(), ENGINE_VERSION.to_string()),
            ("tower".to_string(), self.tower.to_string()),
            ("source_blake3".to_string(), self.source_hash.clone()),
            ("content_blake3".to_string(), content.to_string()),
            ("tensors".to_string(), count.to_string()),
        ])
    }
}

/// BLAKE3 of a file's bytes. Hashed through read-only mappings of 64 MiB windows, each
/// unmapped before the next: no copy out of the page cache (a read() of a model file cost
/// more than hashing it), and at most one window is ever part of this process's resident set.
pub fn source_hash(path: &Path) -> Result<String> {
    const WINDOW: u64 = 64 << 20;
    let f = File::open(path).map_err(|e| EngineError::NotFound(format!("{}: {e}", path.display())))?;
    let len = f.metadata().map_err(|e| EngineError::Model(format!("{}: {e}", path.display())))?.len();
    let mut h = blake3::Hasher::new();
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(WINDOW) as usize;
        // SAFETY: a read-only private view of the model file, dropped at the end of this
        // iteration; a file truncated by someone else during these milliseconds is the hazard
        // of any mmap (SIGBUS). The model file is the DBA's, opened read-only.
        let map = unsafe { memmap2::MmapOptions::new().offset(off).len(n).map(&f) }
            .map_err(|e| EngineError::Model(format!("{}: {e}", path.display())))?;
        h.update(&map);
        off += n as u64;
    }
    Ok(h.finalize().to_hex().to_string())
}

/// The BLAKE3 of the model file at `path`, remembered in `dir` under the file's identity:
/// device, inode, size, mtime and ctime (any write to the file changes its ctime, which no
/// user can set back), so a warm load does not read the whole model file again. A missing or
/// malformed memo means: hash the file (and remember it; failing to is not an error).
pub fn source_hash_memo(dir: &Path, path: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).map_err(|e| EngineError::NotFound(format!("{}: {e}", path.display())))?;
    let id =
        format!("source-{:x}-{:x}-{:x}-{}.{}-{}.{}.id", m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
    let memo = dir.join(&id);
    if let Ok(s) = fs::read_to_string(&memo) {
        let s = s.trim();
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(s.to_string());
        }
    }
    let h = source_hash(path)?;
    let tmp = dir.join(format!(".{id}.tmp.{}", std::process::id()));
    if fs::create_dir_all(dir).is_ok() && fs::write(&tmp, &h).is_ok() && fs::rename(&tmp, &memo).is_err() {
        let _ = fs::remove_file(&tmp);
    }
    Ok(h)
}

/// One tensor of a cache file: absolute byte offset in the file, shape.
struct Entry {
    offset: usize,
    shape: Vec<usize>,
}

/// An open, verified cache file.
pub struct CacheFile {
    path: PathBuf,
    map: Arc<Mmap>,
    entries: Vec<Entry>,
}

fn stale(path: &Path, why: impl std::fmt::Display) -> EngineError {
    EngineError::Model(format!("weights cache {}: {why}", path.display()))
}

/// The hash that seals a file: the tensor table (names, shapes, offsets) and the data bytes.
fn content_hash(table: &[(String, Vec<usize>, usize, usize)], data: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    for (name, shape, start, end) in table {
        h.update(format!("{name}:{shape:?}:{start}:{end};").as_bytes());
    }
    h.update(data);
    h.finalize().to_hex().to_string()
}

impl CacheFile {
    /// Maps and verifies `path` against `key`. Any error means: rebuild it.
    pub fn open(path: &Path, key: &CacheKey) -> Result<CacheFile> {
        let file = File::open(path).map_err(|e| stale(path, e))?;
        // SAFETY: a read-only shared map of a file only ever replaced by rename (never written
        // in place by us). The content is verified below before any of it is used; a file
        // truncated under us by someone else after that is the hazard of every mmap (SIGBUS).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| stale(path, e))?;
        let (header_len, meta) = SafeTensors::read_metadata(&map).map_err(|e| stale(path, format!("not a valid file: {e}")))?;
        let data_start = 8 + header_len;
        let want = key.metadata("", 0);
        let got = meta.metadata().clone().unwrap_or_default();
        for k in ["format", "layout", "engine", "tower", "source_blake3"] {
            if got.get(k) != want.get(k) {
                return Err(stale(path, format!("{k} is {:?}, expected {:?}", got.get(k), want.get(k))));
            }
        }
        let count: usize = got.get("tensors").and_then(|s| s.parse().ok()).ok_or_else(|| stale(path, "no tensor count"))?;
        let mut table = Vec::with_capacity(count);
        let mut entries = Vec::with_capacity(count);
        let mut sorted: Vec<(String, Vec<usize>, usize, usize)> =
            meta.tensors().into_iter().map(|(name, info)| (name, info.shape.clone(), info.data_offsets.0, info.data_offsets.1)).collect();
        sorted.sort_by_key(|t| t.2);
        for i in 0..count {
            let name = format!("t{i:05}");
            let info = meta.info(&name).ok_or_else(|| stale(path, format!("tensor {name} missing")))?;
            if info.dtype != safetensors::Dtype::F32 {
                return Err(stale(path, format!("tensor {name} is {:?}", info.dtype)));
            }
            let offset = data_start + info.data_offsets.0;
            if offset % ALIGN != 0 {
                return Err(stale(path, format!("tensor {name} is not aligned")));
            }
            entries.push(Entry { offset, shape: info.shape.clone() });
        }
        table.extend(sorted);
        let data = map.get(data_start..).ok_or_else(|| stale(path, "truncated"))?;
        let sealed = content_hash(&table, data);
        if got.get("content_blake3") != Some(&sealed) {
            return Err(stale(path, "content hash mismatch (edited or damaged)"));
        }
        Ok(CacheFile { path: path.to_path_buf(), map: Arc::new(map), entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn shape(&self, i: usize) -> Option<&[usize]> {
        self.entries.get(i).map(|e| e.shape.as_slice())
    }

    /// Tensor `i` as an MLX array over the mapping (no copy), and whether that worked; where
    /// this MLX build cannot wrap foreign memory, a private copy.
    pub fn array(&self, i: usize) -> Result<(Array, bool)> {
        let e = self.entries.get(i).ok_or_else(|| stale(&self.path, format!("no tensor {i}")))?;
        let n: usize = e.shape.iter().product();
        let dims: Vec<i32> = e.shape.iter().map(|&d| d as i32).collect();
        let bytes = self.map.get(e.offset..e.offset + 4 * n).ok_or_else(|| stale(&self.path, "tensor outside the file"))?;
        if e.offset >= SLOT {
            let owner: kernels::Owner = self.map.clone();
            // SAFETY: `bytes` is 4 * n bytes of the mapping at a 64-byte aligned offset >= 8
            // (8 readable bytes before it), verified above; the map is read-only and `owner`
            // keeps it mapped until MLX frees the array.
            if let Ok(a) = unsafe { kernels::external_f32(bytes.as_ptr().cast::<f32>(), &dims, owner) } {
                return Ok((a, true));
            }
        }
        let v: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok((Array::from_slice(&v, &dims), false))
    }

    /// Whether `ptr` lies inside this file's mapping (for tests and diagnostics).
    pub fn contains_ptr(&self, ptr: *const u8) -> bool {
        let start = self.map.as_ptr() as usize;
        (start..start + self.map.len()).contains(&(ptr as usize))
    }
}

/// Writes `arrays` (evaluated float32 arrays, in the loader's order) as the cache file of
/// `key` in `dir`, atomically; returns its path. The directory is created if missing.
pub fn write(dir: &Path, key: &CacheKey, arrays: &[Array]) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(|e| EngineError::Model(format!("weights cache directory {}: {e}", dir.display())))?;
    let final_path = dir.join(key.file_name());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let tmp = dir.join(format!(".{}.tmp.{}.{nanos}", key.file_name(), std::process::id()));
    let res = write_to(&tmp, key, arrays).and_then(|()| {
        fs::rename(&tmp, &final_path).map_err(|e| EngineError::Model(format!("weights cache {}: {e}", final_path.display())))
    });
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map(|()| final_path)
}

fn write_to(tmp: &Path, key: &CacheKey, arrays: &[Array]) -> Result<()> {
    let io = |e: std::io::Error| EngineError::Model(format!("weights cache {}: {e}", tmp.display()));
    // Plan the layout: data offsets relative to the data region, which itself starts at a
    // multiple of ALIGN (the header is padded with spaces, as safetensors allows).
    let mut flat = Vec::with_capacity(arrays.len());
    for a in arrays {
        let f = if a.dtype() == Dtype::Float32 { a.reshape(&[-1])? } else { a.as_dtype(Dtype::Float32)?.reshape(&[-1])? };
        f.eval()?;
        flat.push(f);
    }
    let mut table: Vec<(String, Vec<usize>, usize, usize)> = Vec::new();
    let mut pos = 0usize;
    for (i, (a, f)) in arrays.iter().zip(&flat).enumerate() {
        let start = (pos + SLOT).div_ceil(ALIGN) * ALIGN;
        if start > pos {
            table.push((format!("pad{i:05}"), vec![start - pos], pos, start));
        }
        let end = start + 4 * f.size();
        table.push((format!("t{i:05}"), a.shape().iter().map(|&d| d as usize).collect(), start, end));
        pos = end;
    }
    // The seal covers the table and the data; compute it by streaming the same bytes.
    let mut data_hash = blake3::Hasher::new();
    for (name, shape, start, end) in &table {
        data_hash.update(format!("{name}:{shape:?}:{start}:{end};").as_bytes());
    }
    let zeros = [0u8; ALIGN + SLOT];
    let mut k = 0;
    for (name, _, start, end) in &table {
        if name.starts_with("pad") {
            data_hash.update(&zeros[..end - start]);
        } else {
            data_hash.update(bytes_of(&flat[k])?);
            k += 1;
        }
    }
    let content = data_hash.finalize().to_hex().to_string();
    let mut header = serde_json::Map::new();
    let meta: serde_json::Map<String, serde_json::Value> =
        key.metadata(&content, arrays.len()).into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
    header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    for (name, shape, start, end) in &table {
        let dtype = if name.starts_with("pad") { "U8" } else { "F32" };
        header.insert(name.clone(), serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, end]}));
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).map_err(|e| EngineError::Model(e.to_string()))?;
    while (8 + h.len()) % ALIGN != 0 {
        h.push(b' ');
    }
    let mut f = std::io::BufWriter::with_capacity(8 << 20, File::create(tmp).map_err(io)?);
    f.write_all(&(h.len() as u64).to_le_bytes()).map_err(io)?;
    f.write_all(&h).map_err(io)?;
    let mut k = 0;
    for (name, _, start, end) in &table {
        if name.starts_with("pad") {
            f.write_all(&zeros[..end - start]).map_err(io)?;
        } else {
            f.write_all(bytes_of(&flat[k])?).map_err(io)?;
            k += 1;
        }
    }
    let file = f.into_inner().map_err(|e| io(e.into_error()))?;
    // Durable before it becomes visible under its final name.
    file.sync_all().map_err(io)?;
    Ok(())
}

/// The little-endian bytes of an evaluated, contiguous float32 array.
fn bytes_of(a: &Array) -> Result<&[u8]> {
    let s = a.try_as_slice::<f32>().map_err(|e| EngineError::Mlx(e.to_string()))?;
    // SAFETY: f32 has no padding and any bit pattern is a valid u8; the slice borrows `a`.
    // x86_64 and aarch64 are little-endian, the byte order safetensors prescribes.
    Ok(unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) })
}
