//! mobileclip-engine: MobileCLIP2 on MLX, with no Postgres in it.
//!
//! The public surface is what the extension (src/) and the CLI use: [`Engine`] (load a model
//! directory, embed texts and images), the runtime (MLX set-up that is safe inside a forked,
//! long-lived process, and facts about it), the micro-benchmarks, image preprocessing limits
//! and the model's config and tokenizer. The towers and their building blocks are private;
//! the engine's own tests and benchmarks reach a few of them through `testing` (feature
//! `testdata`). Layers and data flow: docs/ARCHITECTURE.md.

pub mod config;
pub mod engine;
pub mod error;
pub mod microbench;
pub mod preprocess;
pub mod runtime;
pub mod tokenizer;
pub mod zero_shot;

mod conv;
mod fastvit;
mod footprint;
mod kernels;
mod loader;
mod nn;
mod params;
mod rng;
mod text;
mod text_clean;
mod vision;
mod vit;
mod weights;
mod weights_cache;

/// Random-weight test models ("mcrand v1"): for the CLI's `random-model` and `parity`, and
/// the tests.
#[cfg(any(test, feature = "testdata"))]
pub mod random_model;

/// Seeded mutation fuzzing of image bytes and texts: the CLI's `fuzz` and the bounded run in
/// the tests.
#[cfg(feature = "testdata")]
pub mod fuzz;

/// Internals that the engine's integration tests and benchmarks (crates/engine/tests) drive
/// directly: a tower on its own, the weights file, the text clean-up. Not for products.
#[cfg(feature = "testdata")]
pub mod testing {
    pub use crate::fastvit::{FastVit, FastVitSpec};
    pub use crate::nn::l2_normalize;
    pub use crate::params::Params;
    pub use crate::weights::Weights;

    /// open_clip's text clean-up (ftfy, html unescape, whitespace, lower), before BPE.
    pub mod text_clean {
        pub use crate::text_clean::clean;
    }
}

pub use engine::{Engine, LoadOptions, TowerInfo};
pub use loader::CacheState;

pub use error::{EngineError, Result};
