//! Where a tower's loader gets its arrays: the one place that knows whether they are being
//! made from the model file or mapped from the weights cache.
//!
//! A loader asks for every array it keeps through [`Params::one`] (or [`Params::tensor`] for
//! a file tensor used as it is), stating the shape and how to make it. Building, `make` runs
//! (reading the model file, reparameterizing) and the array is recorded; the recorded list,
//! in call order, is what the cache file holds. From the cache, `make` never runs: the next
//! cached array is returned, mapped without a copy. The order is the loader's own code path,
//! which depends only on the config and the file's header, both the same on either side; the
//! stated shape is checked against the cached one, so a cache from another layout fails
//! loudly (and is rebuilt) instead of feeding a tensor to the wrong place.

use std::cell::{Cell, RefCell};

use mlx_rs::Array;

use crate::error::{EngineError, Result};
use crate::weights::Weights;
use crate::weights_cache::{CacheFile, CacheWriter};

enum Mode<'a> {
    Build(RefCell<Vec<Array>>),
    /// Building straight into a cache file: each array is written as soon as it is made and
    /// the loader gets an unevaluated placeholder (the tower is mapped from the file after).
    /// `failed`: the first write error; the arrays after it are not written.
    Stream {
        writer: Box<RefCell<CacheWriter>>,
        failed: RefCell<Option<String>>,
    },
    Cached {
        file: &'a CacheFile,
        next: Cell<usize>,
        copied: Cell<usize>,
    },
}

pub struct Params<'a> {
    src: &'a Weights,
    mode: Mode<'a>,
}

fn dims(shape: &[usize]) -> Vec<i32> {
    shape.iter().map(|&d| d as i32).collect()
}

impl<'a> Params<'a> {
    /// Arrays made from `src` (and recorded).
    pub fn build(src: &'a Weights) -> Self {
        Params { src, mode: Mode::Build(RefCell::new(Vec::new())) }
    }

    /// Arrays made from `src` and written into `writer` (the loader's tower is a skeleton of
    /// placeholders: load it from the finished file).
    pub fn stream(src: &'a Weights, writer: CacheWriter) -> Self {
        Params { src, mode: Mode::Stream { writer: Box::new(RefCell::new(writer)), failed: RefCell::new(None) } }
    }

    /// Arrays taken, in order, from a verified cache file made from `src`.
    pub fn cached(src: &'a Weights, file: &'a CacheFile) -> Self {
        Params { src, mode: Mode::Cached { file, next: Cell::new(0), copied: Cell::new(0) } }
    }

    /// The model file: its header (keys, shapes) is read in both modes; tensor data only
    /// inside `make` closures.
    pub fn src(&self) -> &'a Weights {
        self.src
    }

    /// One array the tower keeps, of `shape`.
    pub fn one(&self, shape: &[usize], make: impl FnOnce() -> Result<Array>) -> Result<Array> {
        // Making it holds the file's values, the MLX array and a reparameterization's
        // temporaries at once: room for three copies, asked for before MLX allocates.
        let _room = match self.mode {
            Mode::Cached { .. } => None,
            _ => {
                let bytes = shape.iter().product::<usize>().saturating_mul(4 * 3);
                Some(crate::runtime::reserve(bytes, &format!("a weight of shape {shape:?}"))?)
            }
        };
        match &self.mode {
            Mode::Build(rec) => {
                let a = make()?;
                if a.shape() != dims(shape).as_slice() {
                    return Err(EngineError::Model(format!("internal: loader made {:?} where it declared {shape:?}", a.shape())));
                }
                rec.borrow_mut().push(a.clone());
                Ok(a)
            }
            Mode::Stream { writer, failed } => {
                let a = make()?;
                if a.shape() != dims(shape).as_slice() {
                    return Err(EngineError::Model(format!("internal: loader made {:?} where it declared {shape:?}", a.shape())));
                }
                if failed.borrow().is_none() {
                    if let Err(e) = writer.borrow_mut().append(&a) {
                        *failed.borrow_mut() = Some(e.to_string());
                    }
                }
                // Give the array's memory back now, not to MLX's buffer cache (which would keep
                // the freed arrays of the whole tower).
                drop(a);
                crate::runtime::clear_cache();
                // Unevaluated zeros: no memory, never computed (the skeleton is discarded).
                Ok(mlx_rs::ops::zeros::<f32>(&dims(shape))?)
            }
            Mode::Cached { file, next, copied } => {
                let i = next.get();
                next.set(i + 1);
                match file.shape(i) {
                    Some(s) if s == shape => {}
                    got => {
                        return Err(EngineError::Model(format!(
                            "weights cache {}: tensor {i} is {got:?}, the loader expects {shape:?}",
                            file.path().display()
                        )))
                    }
                }
                let (a, zero_copy) = file.array(i)?;
                if !zero_copy {
                    copied.set(copied.get() + 1);
                }
                Ok(a)
            }
        }
    }

    /// A linear weight of `out` x `cin` (made by `w` in PyTorch's [out, in] layout) in the
    /// kernel GEMM's packed form ([`crate::kernels::pack_out_in`]).
    pub fn packed(&self, out: usize, cin: usize, w: impl FnOnce() -> Result<Vec<f32>>) -> Result<Array> {
        let shape = crate::kernels::packed_shape(cin, out);
        self.one(&shape, || Ok(Array::from_slice(&crate::kernels::pack_out_in(&w()?, out, cin), &dims(&shape))))
    }

    /// A tensor of the model file used as it is.
    pub fn tensor(&self, key: &str, shape: &[usize]) -> Result<Array> {
        self.one(shape, || self.src.array(key, shape))
    }

    /// Ends a build: the recorded arrays, in the order the loader asked for them.
    pub fn finish_built(self) -> Result<Vec<Array>> {
        match self.mode {
            Mode::Build(rec) => Ok(rec.into_inner()),
            _ => Err(EngineError::Model("internal: finish_built on a load that is not a private build".into())),
        }
    }

    /// Ends a load from the cache: checks that the loader took exactly the file's tensors;
    /// returns how many arrays had to be copied (0 where MLX wraps the mapping).
    pub fn finish_cached(self) -> Result<usize> {
        match self.mode {
            Mode::Cached { file, next, copied } => {
                if next.get() != file.len() {
                    return Err(EngineError::Model(format!(
                        "weights cache {}: holds {} tensors, the loader took {}",
                        file.path().display(),
                        file.len(),
                        next.get()
                    )));
                }
                Ok(copied.get())
            }
            _ => Err(EngineError::Model("internal: finish_cached on a build".into())),
        }
    }

    /// Ends a streamed build: seals and renames the cache file; its path, or why the cache
    /// could not be written (a write error: the caller loads privately).
    pub fn finish_stream(self) -> std::result::Result<std::path::PathBuf, String> {
        match self.mode {
            Mode::Stream { writer, failed } => match failed.into_inner() {
                Some(e) => Err(e),
                None => (*writer).into_inner().finish().map_err(|e| e.to_string()),
            },
            _ => Err("internal: finish_stream on a load that is not streamed".into()),
        }
    }
}
