//! pgvector's `vector` as a return type. Its on-disk form is a varlena: 4-byte header, int16
//! dim, int16 unused (0), then dim float4 (pgvector `Vector` struct). We build that directly,
//! so SQL gets a real `vector` (operators like `<=>` work without a cast).

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

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

/// The oid of `vector` found by the last lookup; 0: look it up again. Per backend (a backend
/// is one thread: the atomics are only for a safe `static`).
static VECTOR_OID: AtomicU32 = AtomicU32::new(0);
/// Whether this process has registered `forget_vector_oid` (registered callbacks stay for the
/// life of the process, and there are few slots: once).
static CALLBACK_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Invalidation callback for the pg_type syscache: any change to pg_type, such as DROP
/// EXTENSION vector (the type goes, and a CREATE EXTENSION makes it again with a new oid),
/// forgets the cached oid. It runs for every pg_type change in the database, not only
/// `vector`'s; forgetting costs one lookup on the next call, which is cheaper than telling
/// the rows apart here.
extern "C-unwind" fn forget_vector_oid(_arg: pg_sys::Datum, _cache_id: c_int, _hash: u32) {
    VECTOR_OID.store(0, Ordering::Relaxed);
}

/// The oid of pgvector's `vector`, found through the `vector` extension's schema (not the
/// search_path). Cached per backend until pg_type changes (see `forget_vector_oid`), so it
/// cannot go stale when pgvector is dropped and re-created in the session.
fn vector_oid() -> pg_sys::Oid {
    if !CALLBACK_REGISTERED.swap(true, Ordering::Relaxed) {
        let callback: unsafe extern "C-unwind" fn(pg_sys::Datum, c_int, u32) = forget_vector_oid;
        // SAFETY: registers a plain function (it only stores to an atomic, so it cannot fail
        // or unwind) for the TYPEOID syscache; allowed at any time in a backend, and done
        // once per process because the callback table is small and never shrinks.
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(pg_sys::SysCacheIdentifier::TYPEOID as c_int, Some(callback), pg_sys::Datum::from(0usize))
        };
    }
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

impl FromDatum for Vector {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _typoid: pg_sys::Oid) -> Option<Self> {
        if is_null {
            return None;
        }
        // SAFETY: Postgres passes a `vector` datum here (the SQL signature says so): a varlena,
        // possibly toasted or short-header; pg_detoast_datum returns a plain 4-byte-header copy
        // (or the original) in the current memory context, laid out as pgvector's struct.
        unsafe {
            let p = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *const u8;
            let size = pgrx::varsize_any(p as *const pg_sys::varlena);
            let dim = (p.add(4) as *const i16).read_unaligned().max(0) as usize;
            // pgvector's own check (vector_in, vector_recv) guarantees this; a mismatch would
            // mean a different type: read nothing past the datum.
            let dim = dim.min(size.saturating_sub(8) / 4);
            let mut v = vec![0f32; dim];
            std::ptr::copy_nonoverlapping(p.add(8), v.as_mut_ptr() as *mut u8, 4 * dim);
            Some(Vector(v))
        }
    }
}

// SAFETY: a `vector` argument is unboxed through `FromDatum` above, like pgrx's built-in types.
unsafe impl<'fcx> pgrx::callconv::ArgAbi<'fcx> for Vector {
    unsafe fn unbox_arg_unchecked(arg: pgrx::callconv::Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: the caller's contract (a `vector` datum for this argument).
        unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
}
