//! The per-backend engine state, created lazily on first use (never in _PG_init: see lib.rs).

use once_cell::sync::OnceCell;

use mobileclip_engine::runtime::{self, InitOptions};
use mobileclip_engine::EngineError;

use crate::guc;

static RUNTIME: OnceCell<()> = OnceCell::new();

/// Starts MLX in this backend (once) and applies the session's settings. Every SQL function
/// that computes calls this first.
pub fn runtime() -> Result<(), EngineError> {
    RUNTIME.get_or_try_init(|| {
        // Run-time compile would fork g++ from the backend and share a cache directory across
        // backends, for ~2% speed: off.
        runtime::init(InitOptions { disable_compile: true, blas_threads: None })
    })?;
    runtime::set_device(guc::device())
}
