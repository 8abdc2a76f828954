//! `open_clip_model.safetensors`: opened once, every tensor checked against the shape the
//! config implies before MLX sees it; errors name the file and the key. Never loads pickles.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use mlx_rs::Array;
use safetensors::tensor::{Dtype, Metadata, SafeTensors};

use crate::error::{EngineError, Result};

/// Largest tensor accepted, in elements (the biggest MobileCLIP2 tensor is the 49408 x 768
/// token embedding, 38M): bounds what a corrupt header can make us allocate.
const MAX_TENSOR_ELEMENTS: usize = 1 << 28;

pub struct Weights {
    path: PathBuf,
    /// Tensor data is read with pread, not through a mapping: the model file's pages then
    /// never count in this process's resident set (the weights cache is what is mapped).
    file: File,
    header_len: usize,
    meta: Metadata,
}

impl Weights {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| EngineError::NotFound(format!("{}: {e}", path.display())))?;
        // SAFETY: read-only map, used only to parse and validate the header (safetensors checks
        // the offsets against the file length; only the header's pages are read) and dropped
        // right after; a file truncated during those microseconds is the one hazard (SIGBUS).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| match e.raw_os_error() {
            // The process's address space is full (an address-space limit), not a bad file.
            Some(libc::ENOMEM) => EngineError::OutOfMemory(format!("out of memory: {} cannot be mapped: {e}", path.display())),
            _ => EngineError::Model(format!("{}: {e}", path.display())),
        })?;
        let (header_len, meta) = SafeTensors::read_metadata(&map)
            .map_err(|e| EngineError::Model(format!("{}: not a valid safetensors file: {e}", path.display())))?;
        drop(map);
        Ok(Weights { path: path.to_path_buf(), file, header_len, meta })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn keys(&self) -> Vec<String> {
        self.meta.offset_keys()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.meta.info(key).is_some()
    }

    /// The shape the header gives `key` (for tools that read every tensor: the fuzzer).
    #[cfg(feature = "testdata")]
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.meta.info(key).map(|i| i.shape.clone())
    }

    /// The one check for stray tensors: a key under `prefix` that `expected` does not know
    /// means the file does not match the config (the tower would silently ignore weights).
    /// Names the first three, sorted.
    pub fn reject_unexpected(&self, prefix: &str, expected: impl Fn(&str) -> bool, tower: &str, hint: &str) -> Result<()> {
        let mut extra: Vec<String> = self.keys().into_iter().filter(|k| k.starts_with(prefix) && !expected(k)).collect();
        if extra.is_empty() {
            return Ok(());
        }
        extra.sort();
        let more = if extra.len() > 3 { format!(" (and {} more)", extra.len() - 3) } else { String::new() };
        Err(EngineError::Model(format!(
            "{}: unexpected {tower} tensor(s) {}{more}: {hint}",
            self.path.display(),
            extra[..extra.len().min(3)].join(", ")
        )))
    }

    fn err(&self, key: &str, what: String) -> EngineError {
        EngineError::Model(format!("{}: tensor \"{key}\": {what}", self.path.display()))
    }

    /// Checks that `key` exists with exactly `shape` and a float dtype, from the header only.
    pub fn check(&self, key: &str, shape: &[usize]) -> Result<()> {
        let info = self.meta.info(key).ok_or_else(|| self.err(key, "missing".into()))?;
        if info.shape != shape {
            return Err(self.err(key, format!("shape {:?}, expected {:?}", info.shape, shape)));
        }
        if !matches!(info.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(self.err(key, format!("dtype {:?}, expected F32 (or F16/BF16)", info.dtype)));
        }
        let elements: usize = shape.iter().product();
        if elements > MAX_TENSOR_ELEMENTS {
            return Err(self.err(key, format!("{elements} elements is over the limit")));
        }
        Ok(())
    }

    /// The values of `key` as float32; it must have exactly `shape`.
    pub fn f32_vec(&self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.check(key, shape)?;
        let info = self.meta.info(key).ok_or_else(|| self.err(key, "missing".into()))?;
        let (start, end) = info.data_offsets;
        let len = end.saturating_sub(start);
        let at = (8 + self.header_len + start) as u64;
        let read = |buf: &mut [u8]| self.file.read_exact_at(buf, at).map_err(|e| self.err(key, format!("cannot read its data: {e}")));
        let v: Vec<f32> = match info.dtype {
            Dtype::F32 => {
                // Read straight into the result (one buffer: the largest tensor is ~150 MB).
                let mut v = Vec::new();
                v.try_reserve_exact(len / 4).map_err(|_| {
                    EngineError::OutOfMemory(format!("out of memory: tensor {key} ({} MB) cannot be read", len.div_ceil(1 << 20)))
                })?;
                v.resize(len / 4, 0f32);
                // SAFETY: the Vec owns len / 4 * 4 initialized bytes; any byte pattern is a valid
                // f32; the byte view ends before `v` is used again.
                read(unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 4) })?;
                // safetensors is little-endian (a no-op on every target we build for).
                v.iter_mut().for_each(|x| *x = f32::from_bits(u32::from_le(x.to_bits())));
                v
            }
            Dtype::F16 | Dtype::BF16 => {
                let mut data = Vec::new();
                data.try_reserve_exact(len).map_err(|_| {
                    EngineError::OutOfMemory(format!("out of memory: tensor {key} ({} MB) cannot be read", len.div_ceil(1 << 20)))
                })?;
                data.resize(len, 0u8);
                read(&mut data)?;
                if info.dtype == Dtype::F16 {
                    data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
                } else {
                    data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
                }
            }
            other => return Err(self.err(key, format!("dtype {other:?}, expected F32 (or F16/BF16)"))),
        };
        self.check_values(key, &v)?;
        Ok(v)
    }

    /// Every weight must be finite (a NaN or Inf weight makes every output NaN, or some), and
    /// a BatchNorm running variance must also be >= 0 (folding divides by sqrt(var + eps)).
    /// Checked on every tensor as it is read, so the error names the tensor.
    fn check_values(&self, key: &str, v: &[f32]) -> Result<()> {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            let n = v.iter().filter(|x| !x.is_finite()).count();
            return Err(self.err(key, format!("{n} non-finite value(s), the first {} at flat index {i}: the checkpoint is damaged", v[i])));
        }
        if key.ends_with("running_var") {
            if let Some(i) = v.iter().position(|&x| x < 0.0) {
                return Err(
                    self.err(key, format!("BatchNorm running variance {} at index {i} is negative: the checkpoint is damaged", v[i]))
                );
            }
        }
        Ok(())
    }

    /// `key` as an MLX float32 array of `shape`.
    pub fn array(&self, key: &str, shape: &[usize]) -> Result<Array> {
        let v = self.f32_vec(key, shape)?;
        let dims: Vec<i32> = shape.iter().map(|&d| d as i32).collect();
        Ok(Array::from_slice(&v, &dims))
    }
}

/// A tower's tensor inventory: every key it reads with its shape, in state_dict order. One
/// list drives both the header check ([`Inventory::check`]) and the loader, which names a key
/// and takes its shape from here ([`Inventory::shape`]): the two cannot disagree, and a key
/// the inventory does not list is an internal error, not a silent extra read.
pub struct Inventory {
    keys: Vec<(String, Vec<usize>)>,
    index: HashMap<String, usize>,
}

impl Inventory {
    pub fn new(keys: Vec<(String, Vec<usize>)>) -> Inventory {
        let index = keys.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
        Inventory { keys, index }
    }

    /// Header-only: every listed key with its shape and a float dtype, and no key under
    /// `prefix` that is neither listed nor `tolerated` (e.g. an unused BatchNorm counter).
    pub fn check(&self, w: &Weights, prefix: &str, tower: &str, hint: &str, tolerated: impl Fn(&str) -> bool) -> Result<()> {
        w.reject_unexpected(prefix, |k| self.index.contains_key(k) || tolerated(k), tower, hint)?;
        for (k, shape) in &self.keys {
            w.check(k, shape)?;
        }
        Ok(())
    }

    /// The shape of a listed key.
    pub fn shape(&self, key: &str) -> Result<&[usize]> {
        self.index
            .get(key)
            .map(|&i| self.keys[i].1.as_slice())
            .ok_or_else(|| EngineError::Model(format!("internal: the loader asked for {key}, which the inventory does not list")))
    }
}
