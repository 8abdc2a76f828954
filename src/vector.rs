//! pgvector's `vector` as a return type. Its on-disk form is a varlena: 4-byte header, int16
//! dim, int16 unused (0), then dim float4 (pgvector `Vector` struct). We build that directly,
//! so SQL gets a real `vector` (operators like `<=>` work without a cast).

use std::sync::atomic::{AtomicU32, Ordering};

use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::pgrx_sql_entity_graph::metadata::{ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin};
use pgrx::prelude::*;

/// pgvector's limit (VECTOR_MAX_DIM).
const VECTOR_MAX_DIM: usize = 16000;

pub struct Vector(pub Vec<f32>);

// SAFETY: the SQL type declared here, pgvector's `vector`, is exactly what `into_datum` builds
// (its varlena layout) and what `type_oid` names; pgrx trusts this mapping when it generates
// the functions' SQL and reads their results.
unsafe impl SqlTranslatable for Vector {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(Vector);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("vector"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Ok(ReturnsRef::One(SqlMappingRef::literal("vector")));
}

static VECTOR_OID: AtomicU32 = AtomicU32::new(0);

/// The oid of pgvector's `vector`, found through the `vector` extension's schema (not the
/// search_path), cached per backend.
fn vector_oid() -> pg_sys::Oid {
    let cached = VECTOR_OID.load(Ordering::Relaxed);
    if cached != 0 {
        return pg_sys::Oid::from(cached);
    }
    let oid = Spi::get_one::<pg_sys::Oid>(
        "SELECT t.oid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_extension e \
         ON t.typnamespace = e.extnamespace WHERE e.extname = 'vector' AND t.typname = 'vector'",
    );
    match oid {
        Ok(Some(oid)) => {
            VECTOR_OID.store(oid.to_u32(), Ordering::Relaxed);
            oid
        }
        _ => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                "mobileclip: type \"vector\" of extension \"vector\" (pgvector) not found"
            );
        }
    }
}

impl IntoDatum for Vector {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let dim = self.0.len();
        if dim == 0 || dim > VECTOR_MAX_DIM {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("mobileclip: a vector must have 1 to {VECTOR_MAX_DIM} dimensions, not {dim}")
            );
        }
        let size = 8 + 4 * dim;
        // SAFETY: palloc0 returns `size` writable bytes in the current memory context; we
        // fill exactly pgvector's layout.
        unsafe {
            let p = pg_sys::palloc0(size) as *mut u8;
            pgrx::set_varsize_4b(p as *mut pg_sys::varlena, size as i32);
            (p.add(4) as *mut i16).write_unaligned(dim as i16);
            (p.add(6) as *mut i16).write_unaligned(0);
            std::ptr::copy_nonoverlapping(self.0.as_ptr() as *const u8, p.add(8), 4 * dim);
            Some(pg_sys::Datum::from(p))
        }
    }

    fn type_oid() -> pg_sys::Oid {
        vector_oid()
    }
}

// SAFETY: `box_into` returns either SQL NULL or a datum of the declared return type `vector`
// (a pointer to a palloc'ed varlena from `into_datum`, alive in the function's memory context).
unsafe impl BoxRet for Vector {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        match self.into_datum() {
            // SAFETY: `datum` is a valid `vector` varlena pointer for this call's result (above).
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}
