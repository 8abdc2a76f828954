//! mobileclip-engine: MobileCLIP2 on MLX. Knows nothing of Postgres.
//!
//! Today it holds the runtime layer (MLX set-up that is safe inside a forked, long-lived
//! process; runtime facts; micro-benchmarks); the model towers build on it.

pub mod config;
pub mod conv;
pub mod engine;
pub mod error;
pub mod fastvit;
pub mod kernels;
pub mod loader;
pub mod microbench;
pub mod nn;
pub mod npy;
pub mod params;
pub mod preprocess;
pub mod random_model;
pub mod runtime;
pub mod text;
pub mod text_clean;
pub mod tokenizer;
pub mod vision;
pub mod vit;
pub mod weights;
pub mod weights_cache;

pub use engine::{Engine, LoadOptions};

pub use error::{EngineError, Result};
