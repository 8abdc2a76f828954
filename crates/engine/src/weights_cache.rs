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
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use memmap2::Mmap;
use mlx_rs::{Array, Dtype};
use safetensors::tensor::SafeTensors;

use crate::error::{EngineError, Result};
use crate::kernels;

/// Bump when a tower's loader changes the order or form of the arrays it asks for.
pub const LAYOUT_VERSION: u32 = 5;
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

/// The hash that seals a file: the data bytes, then the tensor table (names, shapes, offsets).
fn content_hash(table: &[(String, Vec<usize>, usize, usize)], data: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(data);
    seal(h, table)
}

fn seal(mut h: blake3::Hasher, table: &[(String, Vec<usize>, usize, usize)]) -> String {
    for (name, shape, start, end) in table {
        h.update(format!("{name}:{shape:?}:{start}:{end};").as_bytes());
    }
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
}

/// Bytes reserved at the start of a file for its header (8-byte length + JSON padded with
/// spaces): data is streamed behind it while the tower is built, and the header, known only
/// at the end, is written last. ~100 bytes per tensor: room for ~10,000.
const HEADER_ROOM: usize = 1 << 20;

/// Writes a cache file while a tower is built: each array goes to disk as soon as the loader
/// made it (and can be dropped), so building never holds the whole tower in memory. Written
/// under a temporary name; `finish` seals it and renames it into place; dropped unfinished,
/// the temporary file is removed.
pub struct CacheWriter {
    dir: PathBuf,
    key: CacheKey,
    tmp: PathBuf,
    file: Option<std::io::BufWriter<File>>,
    hash: blake3::Hasher,
    table: Vec<(String, Vec<usize>, usize, usize)>,
    /// End of the data written so far, relative to the data region.
    pos: usize,
    count: usize,
}

impl CacheWriter {
    pub fn create(dir: &Path, key: &CacheKey) -> Result<CacheWriter> {
        fs::create_dir_all(dir).map_err(|e| EngineError::Model(format!("weights cache directory {}: {e}", dir.display())))?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let tmp = dir.join(format!(".{}.tmp.{}.{nanos}", key.file_name(), std::process::id()));
        let mut w = CacheWriter {
            dir: dir.to_path_buf(),
            key: key.clone(),
            tmp: tmp.clone(),
            file: None,
            hash: blake3::Hasher::new(),
            table: Vec::new(),
            pos: 0,
            count: 0,
        };
        let f = File::create(&tmp).map_err(|e| w.io(e))?;
        let mut f = std::io::BufWriter::with_capacity(8 << 20, f);
        f.write_all(&[0u8; HEADER_ROOM]).map_err(|e| w.io(e))?;
        w.file = Some(f);
        Ok(w)
    }

    fn io(&self, e: std::io::Error) -> EngineError {
        EngineError::Model(format!("weights cache {}: {e}", self.tmp.display()))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hash.update(bytes);
        let r = match self.file.as_mut() {
            Some(f) => f.write_all(bytes),
            None => Err(std::io::Error::other("already finished")),
        };
        r.map_err(|e| self.io(e))
    }

    /// Appends one array (any float dtype, any layout: written as row-major float32).
    pub fn append(&mut self, a: &Array) -> Result<()> {
        let f = if a.dtype() == Dtype::Float32 { a.reshape(&[-1])? } else { a.as_dtype(Dtype::Float32)?.reshape(&[-1])? };
        f.eval()?;
        let i = self.count;
        let start = (self.pos + SLOT).div_ceil(ALIGN) * ALIGN;
        if start > self.pos {
            self.write(&[0u8; ALIGN + SLOT][..start - self.pos])?;
            self.table.push((format!("pad{i:05}"), vec![start - self.pos], self.pos, start));
        }
        self.write(bytes_of(&f)?)?;
        let end = start + 4 * f.size();
        self.table.push((format!("t{i:05}"), a.shape().iter().map(|&d| d as usize).collect(), start, end));
        self.pos = end;
        self.count += 1;
        Ok(())
    }

    /// Writes the header, makes the file durable and renames it into place; its path.
    pub fn finish(mut self) -> Result<PathBuf> {
        let content = seal(self.hash.clone(), &self.table);
        let mut header = serde_json::Map::new();
        let meta: serde_json::Map<String, serde_json::Value> =
            self.key.metadata(&content, self.count).into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(meta));
        for (name, shape, start, end) in &self.table {
            let dtype = if name.starts_with("pad") { "U8" } else { "F32" };
            header.insert(name.clone(), serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, end]}));
        }
        let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).map_err(|e| EngineError::Model(e.to_string()))?;
        if 8 + h.len() > HEADER_ROOM {
            return Err(EngineError::Model(format!("weights cache: a header of {} bytes does not fit", h.len())));
        }
        h.resize(HEADER_ROOM - 8, b' ');
        let f = self.file.take().ok_or_else(|| EngineError::Model("weights cache: finished twice".into()))?;
        let file = f.into_inner().map_err(|e| self.io(e.into_error()))?;
        file.write_all_at(&(h.len() as u64).to_le_bytes(), 0).map_err(|e| self.io(e))?;
        file.write_all_at(&h, 8).map_err(|e| self.io(e))?;
        // Durable before it becomes visible under its final name.
        file.sync_all().map_err(|e| self.io(e))?;
        let final_path = self.dir.join(self.key.file_name());
        fs::rename(&self.tmp, &final_path).map_err(|e| EngineError::Model(format!("weights cache {}: {e}", final_path.display())))?;
        Ok(final_path)
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        // Unfinished (an error, or the load failed): leave nothing behind. After `finish`
        // the temporary name no longer exists and this is a no-op.
        drop(self.file.take());
        let _ = fs::remove_file(&self.tmp);
    }
}

/// The little-endian bytes of an evaluated, contiguous float32 array.
fn bytes_of(a: &Array) -> Result<&[u8]> {
    let s = a.try_as_slice::<f32>().map_err(|e| EngineError::Mlx(e.to_string()))?;
    // SAFETY: f32 has no padding and any bit pattern is a valid u8; the slice borrows `a`.
    // x86_64 and aarch64 are little-endian, the byte order safetensors prescribes.
    Ok(unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) })
}
