//! Engine errors become Postgres ERRORs with a SQLSTATE a client can branch on. Raising goes
//! through pgrx's ereport, which unwinds Rust frames (dropping MLX arrays) before Postgres'
//! longjmp: the backend stays usable.

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use mobileclip_engine::EngineError;

pub fn sqlstate(e: &EngineError) -> PgSqlErrorCode {
    match e {
        // An error raised inside MLX, the external library: 38000.
        EngineError::Mlx(_) => PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
        EngineError::InvalidInput(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        EngineError::LimitExceeded(_) => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        EngineError::Unsupported(_) => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        EngineError::NotFound(_) => PgSqlErrorCode::ERRCODE_UNDEFINED_FILE,
        // The files at mobileclip.model_path are not a usable model: an invalid setting.
        EngineError::Model(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        EngineError::NotConfigured(_) => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        // The model overflowed on this input (NaN/Inf in the embedding): 22003, what Postgres
        // itself raises when float arithmetic overflows ("value out of range: overflow").
        EngineError::NonFinite(_) => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
    }
}

/// Raises `e` as an ERROR. Never returns.
pub fn raise(e: EngineError) -> ! {
    ereport!(ERROR, sqlstate(&e), format!("mobileclip: {e}"));
}

/// `result?` for SQL functions: the value, or an ERROR.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, EngineError> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise(e),
        }
    }
}
