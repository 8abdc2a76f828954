//! Engine errors become Postgres ERRORs with a SQLSTATE a client can branch on. Raising goes
//! through pgrx's ereport, which unwinds Rust frames (dropping MLX arrays) before Postgres'
//! longjmp: the backend stays usable.
//!
//! What a role that is not a superuser sees: the paths of the model and of the weights cache
//! are superuser settings and are not shown to it (SECURITY.md). Messages that name them reach
//! such a caller with the path replaced by the setting's name; the full message goes to the
//! server log (never to the client).

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use mobileclip_engine::EngineError;

use crate::guc;

pub fn sqlstate(e: &EngineError) -> PgSqlErrorCode {
    match e {
        // An error raised inside MLX, the external library: 38000.
        EngineError::Mlx(_) => PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
        EngineError::InvalidInput(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        EngineError::LimitExceeded(_) => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        EngineError::OutOfMemory(_) => PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
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
    let full = format!("mobileclip: {e}");
    let shown = for_caller(&full);
    if shown != full {
        ErrorReport::new(sqlstate(&e), full, "mobileclip").report(PgLogLevel::LOG_SERVER_ONLY);
    }
    ereport!(ERROR, sqlstate(&e), shown);
}

/// Whether the current role is a superuser.
pub fn is_superuser() -> bool {
    // SAFETY: reads the current user's catalog entry (syscache); valid in any transaction.
    unsafe { pg_sys::superuser() }
}

/// `msg` as the current role may see it: for a superuser unchanged; otherwise with the model
/// path and the cache directory replaced by the names of their settings.
pub fn for_caller(msg: &str) -> String {
    if is_superuser() {
        return msg.to_string();
    }
    let mut out = msg.to_string();
    if let Some(dir) = guc::cache_dir() {
        out = out.replace(&dir.display().to_string(), "<mobileclip.cache_dir>");
    }
    if let Some(path) = guc::model_path() {
        let path = path.trim().trim_end_matches('/');
        if !path.is_empty() {
            out = out.replace(path, "<mobileclip.model_path>");
        }
    }
    out
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
