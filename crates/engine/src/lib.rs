//! mobileclip-engine: MobileCLIP2 on MLX. Knows nothing of Postgres.
//!
//! Today it holds the runtime layer (MLX set-up that is safe inside a forked, long-lived
//! process; runtime facts; micro-benchmarks); the model towers build on it.

pub mod error;
pub mod microbench;
pub mod nn;
pub mod runtime;

pub use error::{EngineError, Result};
