//! The engine's one error type. Callers (the extension, the CLI) map variants to their own
//! error surfaces: the extension to SQLSTATEs, the CLI to exit codes.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    /// An MLX operation returned an error (mlx-rs `Exception`): the process is fine and the
    /// next call can proceed.
    #[error("MLX: {0}")]
    Mlx(String),

    /// The caller passed something the engine cannot use (shape, size, value).
    #[error("{0}")]
    InvalidInput(String),

    /// The input is well-formed but over a configured or built-in limit. Checked before MLX
    /// allocates, because a failed MLX allocation is a crash, not an error.
    #[error("{0}")]
    LimitExceeded(String),

    /// The requested feature or device is not available in this build or on this machine.
    #[error("{0}")]
    Unsupported(String),
}

impl From<mlx_rs::error::Exception> for EngineError {
    fn from(e: mlx_rs::error::Exception) -> Self {
        EngineError::Mlx(e.what().to_string())
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;
