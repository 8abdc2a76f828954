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

    /// Memory for a load or a forward pass cannot be allocated (runtime::reserve): checked
    /// before MLX allocates, so the process lives and the next, smaller call can proceed.
    #[error("{0}")]
    OutOfMemory(String),

    /// The requested feature or device is not available in this build or on this machine.
    #[error("{0}")]
    Unsupported(String),

    /// A model file or directory does not exist or cannot be read.
    #[error("{0}")]
    NotFound(String),

    /// A model file exists but is not what it must be (config, tokenizer, weights): the
    /// message names the file and, for weights, the tensor key.
    #[error("{0}")]
    Model(String),

    /// Nothing to run: no model configured.
    #[error("{0}")]
    NotConfigured(String),

    /// A computed embedding holds NaN or Inf (the model overflowed on this input): never
    /// returned, since a vector column cannot store it (pgvector refuses NaN/Inf, so a dump
    /// holding one could not be restored). The message names the input.
    #[error("{0}")]
    NonFinite(String),
}

impl EngineError {
    /// The same error with `what: ` in front of its message (the variant, hence the SQLSTATE,
    /// is kept).
    pub fn context(self, what: &str) -> EngineError {
        use EngineError::*;
        match self {
            Mlx(m) => Mlx(format!("{what}: {m}")),
            InvalidInput(m) => InvalidInput(format!("{what}: {m}")),
            LimitExceeded(m) => LimitExceeded(format!("{what}: {m}")),
            OutOfMemory(m) => OutOfMemory(format!("{what}: {m}")),
            Unsupported(m) => Unsupported(format!("{what}: {m}")),
            NotFound(m) => NotFound(format!("{what}: {m}")),
            Model(m) => Model(format!("{what}: {m}")),
            NotConfigured(m) => NotConfigured(format!("{what}: {m}")),
            NonFinite(m) => NonFinite(format!("{what}: {m}")),
        }
    }
}

impl From<mlx_rs::error::Exception> for EngineError {
    fn from(e: mlx_rs::error::Exception) -> Self {
        EngineError::Mlx(strip_source_location(e.what()).to_string())
    }
}

/// mlx-c appends the C++ source position (" at ./mlx-c/mlx/c/ops.cpp:2291") to every
/// message: noise for a database user, and it changes with every MLX release.
fn strip_source_location(msg: &str) -> &str {
    match msg.rsplit_once(" at ") {
        Some((head, tail))
            if tail
                .rsplit_once(':')
                .is_some_and(|(file, line)| !file.is_empty() && !file.contains(' ') && line.bytes().all(|b| b.is_ascii_digit())) =>
        {
            head
        }
        _ => msg,
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

#[cfg(test)]
mod tests {
    #[test]
    fn source_location_is_stripped_only_when_present() {
        use super::strip_source_location as s;
        assert_eq!(s("[matmul] bad shape. at ./mlx-c/mlx/c/ops.cpp:2291"), "[matmul] bad shape.");
        assert_eq!(s("[matmul] bad shape."), "[matmul] bad shape.");
        assert_eq!(s("look at this: here"), "look at this: here");
    }
}
