//! mobileclip: the Postgres surface of MobileCLIP2-on-MLX. Glue only: GUCs, SQL functions,
//! the per-backend engine cell and error mapping. The model lives in crates/engine.
//!
//! Nothing here touches MLX at load time (`_PG_init`): MLX state does not survive fork(), and
//! a library loaded by the postmaster (shared_preload_libraries) is inherited by every backend
//! through fork. The runtime starts lazily, per backend, on the first call that needs it.

use pgrx::prelude::*;

mod backend_engine;
mod classify;
mod embed;
mod errors;
mod guc;
mod on_write;
mod sessions;
mod sql;
mod vector;

::pgrx::pg_module_magic!(name, version);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::register();
}
